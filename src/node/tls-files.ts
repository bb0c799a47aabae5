/** The client API's TLS files (--http-cert, --http-key, --http-client-ca), read and checked at start. */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TlsFiles } from '../api/http-server';
import type { NodeConfig } from '../config/settings';
import { ConfigError } from '../core/errors';

function read(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read --${flag} ${file}: ${(err as Error).message}`);
  }
}

/** undefined without --http-cert; a ConfigError naming the flag for a missing or unusable file. */
export function readTls(config: NodeConfig): { files: TlsFiles; paths: string[] } | undefined {
  const { httpCert, httpKey, httpClientCa } = config;
  if (!httpCert && !httpKey) {
    if (httpClientCa) throw new ConfigError('--http-client-ca needs --http-cert and --http-key');
    return undefined;
  }
  if (!httpCert || !httpKey) throw new ConfigError('--http-cert and --http-key go together');
  const cert = read('http-cert', httpCert);
  const key = read('http-key', httpKey);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError(`--http-cert ${httpCert} is not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('it is not the key of that certificate');
  } catch (err) {
    throw new ConfigError(`--http-key ${httpKey}: ${(err as Error).message}`);
  }
  const ca = httpClientCa ? read('http-client-ca', httpClientCa) : undefined;
  return { files: { cert, key, ...(ca ? { ca } : {}) }, paths: [httpCert, httpKey, ...(httpClientCa ? [httpClientCa] : [])] };
}
