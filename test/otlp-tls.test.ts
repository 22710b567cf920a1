/**
 * https to a collector with its own certificate authority, as OTEL_EXPORTER_OTLP_CERTIFICATE
 * configures it, and client certificates (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE / _CLIENT_KEY):
 * a real TLS server on 127.0.0.1 with a CA and certificates made by openssl for the test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '../host/export/exporter-config.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import type { LogRecord } from '../host/pipeline/telemetry-records.js';

const dir = mkdtempSync(join(tmpdir(), 'sandtrace-tls-'));
const file = (name: string) => join(dir, name);
let openssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch (e) {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  openssl = false; // no openssl on this machine: the suite is skipped, saying so
}

/** A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate signed by it. */
function makeCertificates(): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=sandtrace test CA');
  writeFileSync(file('san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.cnf');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=sandtrace client');
  run('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '1');
}

const log: LogRecord = { time: 1n, level: 'info', severityNumber: 9, body: 'over tls', attributes: [], scope: 's', traceId: undefined, spanId: undefined, traceFlags: 0, executionId: undefined };

describe('OTLP over https to a collector with its own CA', { skip: openssl ? false : 'openssl is not installed here' }, () => {
  let server: https.Server;
  let url = '';
  const clients: Array<string | undefined> = [];
  before(async () => {
    makeCertificates();
    server = https.createServer({ key: readFileSync(file('server.key')), cert: readFileSync(file('server.pem')), ca: readFileSync(file('ca.pem')), requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      const cn = peer.subject?.CN;
      clients.push(Array.isArray(cn) ? cn[0] : cn);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  test('trusted through OTEL_EXPORTER_OTLP_CERTIFICATE, with the client certificate the environment names', async () => {
    const env = { OTEL_EXPORTER_OTLP_CERTIFICATE: file('ca.pem'), OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: file('client.pem'), OTEL_EXPORTER_OTLP_CLIENT_KEY: file('client.key') };
    const exporter = new OtlpHttpExporter({ endpoint: url, timeoutMs: 5_000 }, env);
    const r = await exporter.exportLogs([log]);
    assert.equal(r.code, 'success', JSON.stringify(r));
    assert.equal(clients.at(-1), 'sandtrace client', 'the server saw the client certificate');
    await exporter.shutdown();
  });

  test("without the CA the collector's certificate is refused, and the result says why", async () => {
    const exporter = new OtlpHttpExporter({ endpoint: url, timeoutMs: 2_000, initialBackoffMs: 50 }, {});
    const r = await exporter.exportLogs([log]);
    assert.equal(r.code, 'failure');
    assert.match(JSON.stringify(r), /self[- ]signed|unable to (get|verify)|UNABLE_TO|SELF_SIGNED/i);
    await exporter.shutdown();
  });

  test('a certificate file that cannot be read is a ConfigError naming the variable', () => {
    assert.throws(() => new OtlpHttpExporter({ endpoint: url }, { OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: file('missing.pem') }), (e: unknown) => e instanceof ConfigError && /OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE=.*the file cannot be read \(ENOENT\)/.test(e.message));
  });
});
