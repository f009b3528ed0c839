/**
 * Static credentials for the fakes. Production adapters use DefaultAzureCredential and Google ADC;
 * tests hand the SDKs a fixed token through the same injection points those chains fill.
 */
import type { TokenCredential } from '@azure/identity';
// google-auth-library comes with @google-cloud/compute (google-gax depends on it); its OAuth2Client
// is the auth client type the SDK expects, with a pre-set access token and no refresh.
import { OAuth2Client } from 'google-auth-library';

export function staticTokenCredential(token: string): TokenCredential {
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }) };
}

export function staticGoogleAuth(token: string): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: token, expiry_date: Date.now() + 3_600_000 });
  return auth;
}
