// One step of an order workflow. Step 1 opens the workflow span and leaves it open; the host
// commits it. Step 2, maybe in another process, resumes it and closes it.
const step = tracing.resume('order workflow') === undefined ? 1 : 2;
if (step === 1) {
  const wf = tracing.span('order workflow', { order: 'A-1001', status: undefined });
  wf.inSpan(() => tracing.info('stock reserved', { items: 2 }));
} else {
  const wf = tracing.resume('order workflow');
  wf.inSpan(() => {
    tracing.info('card charged', { cents: 4999 });
    wf.record('status', 'paid');
  });
  wf.close();
}
step;
