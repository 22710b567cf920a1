// Hostile QuickJS guest: version one let a guest reach the SDK's private config, and its flush,
// through a getter on Object.prototype that the SDK's own property reads ran into; calling that
// flush with junk made the host reject the run. Every way of fishing for the SDK's objects is
// tried here; each must come back empty, and the guest's own records must arrive.
const found = [];
const fish = (name) =>
  Object.defineProperty(Object.prototype, name, {
    configurable: true,
    get() {
      if (this !== globalThis) found.push(name);
      return undefined;
    },
  });
for (const name of ['traceparent', 'executionId', 'flush', 'carried', 'minLevel', 'flushBytes', 'config', 'hooks']) fish(name);
tracing.info('before');
tracing.traceContext();
tracing.executionId();
tracing.carried();
tracing.resume('nothing');
const span = tracing.span('work', { n: 1 });
span.enter();
tracing.info('inside');
span.exit();
span.close();
tracing.flush();
tracing.info('after');
found.join(',') || 'nothing found';
