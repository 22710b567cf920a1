/**
 * A serverless-style handler: every HTTP request runs one guest, under the host's own
 * OpenTelemetry span for the request, so the guest's spans appear inside the request's trace.
 *
 *   npm run example:serverless     (then: curl 'http://127.0.0.1:8787/?name=alice')
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SpanStatusCode, context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { SandboxPool, runQuickJS } from 'sandtrace';
import { OpenTelemetryCollector } from 'sandtrace/opentelemetry';

/** The function each request runs: untrusted code, with its own spans. */
export const FUNCTION = `
  const name = input.name || 'world';
  tracing.inSpan('render greeting', { name }, () => {
    tracing.info('rendering', { length: name.length });
    return 'Hello, ' + name + '!';
  });
`;

export interface HandlerServer {
  url: string;
  close(): Promise<void>;
}

/** Starts the handler, tracing with the host's OpenTelemetry SDK into `spanExporter`. */
export async function startHandler(spanExporter: SpanExporter, port = 0): Promise<HandlerServer> {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
  trace.setGlobalTracerProvider(provider);
  const tracer = trace.getTracer('serverless-host');
  const collector = new OpenTelemetryCollector();
  // Guests run on worker threads, warm before the first request; the handler's own event loop
  // stays free while they run, and a guest that overruns its deadline loses its worker, not the host.
  const pool = new SandboxPool({ size: 2 });
  await pool.warmUp();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    void tracer.startActiveSpan(`GET ${url.pathname}`, async (span) => {
      const input = JSON.stringify({ name: url.searchParams.get('name') ?? undefined });
      const result = await runQuickJS(`const input = ${input};${FUNCTION}`, { collector, pool, deadlineMs: 200, executionId: `req-${Date.now()}` });
      if (!result.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: result.summary.cause ?? 'failed' });
      res.writeHead(result.ok ? 200 : 500, { 'Content-Type': 'text/plain' });
      res.end(result.ok ? String(result.value ?? '') : `function failed: ${result.summary.cause}\n`);
      span.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const handler = await startHandler(new ConsoleSpanExporter(), Number(process.env.PORT ?? 8787));
  console.log(`listening on ${handler.url} — try: curl '${handler.url}?name=alice'`);
}
