// A QuickJS plugin that never returns: the host's deadline interrupts it in the middle of a span.
tracing.inSpan('resize images', { count: 3 }, () => {
  tracing.info('resizing', { file: 'a.png' });
  for (;;) {} // stuck
});
