// The secrets layer: sops files with age recipients, read and written without the sops binary.
export { SecretsFile, decryptFile, type DecryptedFile } from './sops.ts';
export { parseSops, isSopsText, SOPS_VERSION, type SopsMetadata } from './sops-metadata.ts';
export type { DecryptOptions } from './sops-decrypt.ts';
export { loadIdentities, identitiesFromText, generateIdentity, checkRecipient, defaultKeyFile, type Identity, type Identities, type NewIdentity } from './keys.ts';
export { recipientsFor, ruleFor, readCreationRules, setEnvRule, removeEnvRule, envPathRegex, SOPS_CONFIG_FILE, type CreationRule } from './sops-config.ts';
export {
  secretsPath,
  envSopsFiles,
  loadEnvIdentities,
  generateSecretKey,
  generateApiKey,
  generateToken,
  findPlaceholders,
  placeholderError,
  PLACEHOLDER,
  APP_SECRETS,
} from './env.ts';
export { newEnvironment, type NewEnvironment } from './scaffold.ts';
export { toPlain, fromPlain, type MapNode, type TreeNode, type PlainValue, type Format } from './tree.ts';
