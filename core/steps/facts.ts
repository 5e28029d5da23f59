// What `ops ping` reads from a host: one step, no privileges.
import type { Step } from '../remote/types.ts';

export function hostFacts(): Step {
  return {
    name: 'host facts',
    as: 'login',
    timeout: 30,
    quiet: true,
    script: `ops_report hostname "$(hostname)"
ops_report os "$(. /etc/os-release && echo "$PRETTY_NAME")"
ops_report uptime "$(cut -d' ' -f1 /proc/uptime)"
ops_report disk_free_kb "$(df -Pk / | awk 'NR==2 {print $4}')"
ops_report sudo "$(sudo -n true 2>/dev/null && echo yes || echo no)"`,
  };
}
