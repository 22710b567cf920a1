// A QuickJS plugin that never returns: the host's deadline interrupts it in the middle of a span.
tracing.inSpan('resize images', { count: 3 }, () => {
  tracing.info('resizing', { file: 'a.png' });
  // Hand what it traced to the host now: if the guest does not stop within the grace (a thread
  // starved of CPU on a loaded machine may not), its worker is terminated, and what it had not
  // handed over is lost.
  tracing.flush();
  for (;;) {} // stuck
});
