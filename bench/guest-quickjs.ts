/**
 * bench/guest-quickjs: the QuickJS SDK (events encoded in the guest, handed over per batch,
 * decoded by a receiver) against the obvious alternative, a host function called once per event,
 * in the same run. Both subtract the same loop without tracing.
 */
import { NullCollector } from '../host/collectors/null-collector.js';
import variant from '@jitl/quickjs-ng-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant } from 'quickjs-emscripten-core';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { median, type BenchRow } from './harness.js';

const N = 50_000;
/** Loops run inside a function, as plugin code does (top-level bindings are slow in QuickJS). */
const loop = (body: string, setup = '') => `(function () { ${setup} let sink = 0; for (let i = 0; i < ${N}; i++) { sink += i; ${body} } return sink; })()`;

async function timeSdk(body: string, setup = ''): Promise<number> {
  const t = performance.now();
  const r = await runQuickJS(loop(body, setup), { collector: new NullCollector(), deadlineMs: 120_000 });
  if (!r.ok) throw new Error(`bench guest failed: ${r.summary.cause}`);
  return performance.now() - t;
}

/** A guest that calls `emit(message, i, ok)` on the host for every event. */
async function timeHostCall(): Promise<number> {
  const engine = await newQuickJSWASMModuleFromVariant(variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0]);
  const t = performance.now();
  const runtime = engine.newRuntime();
  const vm = runtime.newContext();
  const events: Array<{ message: string; i: number; ok: boolean }> = [];
  try {
    const emit = vm.newFunction('emit', (message, i, ok) => {
      events.push({ message: vm.getString(message), i: vm.getNumber(i), ok: vm.dump(ok) as boolean });
      if (events.length > 1024) events.length = 0;
    });
    vm.setProp(vm.global, 'emit', emit);
    emit.dispose();
    vm.unwrapResult(vm.evalCode(loop(`emit('tick', i, true);`))).dispose();
  } finally {
    vm.dispose();
    runtime.dispose();
  }
  return performance.now() - t;
}

export async function run(): Promise<BenchRow[]> {
  await timeSdk(`tracing.info('tick', { i, ok: true });`); // warm up
  await timeHostCall();
  const bare: number[] = [];
  const site: number[] = [];
  const dynamic: number[] = [];
  const host: number[] = [];
  const spans: number[] = [];
  for (let r = 0; r < 5; r++) {
    bare.push(await timeSdk(''));
    site.push(await timeSdk(`tick.emit(i, true);`, `const tick = tracing.callsite('tick', ['i', 'ok']);`));
    dynamic.push(await timeSdk(`tracing.info('tick', { i, ok: true });`));
    host.push(await timeHostCall());
    spans.push(await timeSdk(`tracing.span('unit', { i }).enter().exit().close();`));
  }
  const base = median(bare);
  const ns = (xs: number[]) => ((median(xs) - base) * 1e6) / N;
  const perSite = ns(site);
  const perDynamic = ns(dynamic);
  const perHost = ns(host);
  const ratio = perHost / perSite;
  return [
    { bench: 'guest-quickjs', metric: 'host call per event, ns (baseline)', value: perHost.toFixed(0), target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'SDK event via tracing.callsite, 2 fields, ns', value: perSite.toFixed(0), target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'host call per event / SDK callsite event', value: `${ratio.toFixed(1)}×`, target: '≥ 10×', ok: ratio >= 10 },
    { bench: 'guest-quickjs', metric: 'SDK event via tracing.info(msg, fields), ns', value: perDynamic.toFixed(0), target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'host call per event / tracing.info event', value: `${(perHost / perDynamic).toFixed(1)}×`, target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'SDK span: create, enter, exit, close, ns', value: ns(spans).toFixed(0), target: '', ok: undefined },
  ];
}
