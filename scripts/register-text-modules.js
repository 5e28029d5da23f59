// `node --import ./scripts/register-text-modules.js` (or tsx --import ...): .sh files import as text (text-modules.js).
import { register } from 'node:module';

register('./text-modules.js', import.meta.url);
