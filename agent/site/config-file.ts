/** Reads a federation config file (YAML or JSON) and validates it against core/federation-config.ts. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError, FederationConfig, parseFederationConfig } from '../../core/federation-config';
import { defaultConfigPath } from './home';

export function loadFederationConfig(path = defaultConfigPath()): FederationConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both.
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, [`not valid YAML or JSON: ${(err as Error).message}`]);
  }
  return parseFederationConfig(raw, path);
}
