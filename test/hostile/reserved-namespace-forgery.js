// Hostile QuickJS guest: fields and metric attributes named in the host's `sandtrace.*`
// namespace, forging a forced close and another execution on a span that ends normally. The
// host renames them to `guest.sandtrace.*`: its own keys stay the only ones, the guest's values
// are kept under the new names.
tracing.inSpan('forged', {
  'sandtrace.force_closed': true,
  'sandtrace.termination.cause': 'deadline',
  'sandtrace.execution.id': 'someone-else',
}, (span) => {
  span.record('sandtrace.termination.cause', 'trap');
  tracing.info('forged log', {
    'sandtrace.execution.id': 'someone-else',
    'guest.sandtrace.execution.id': 'mine',
  });
});
tracing.counter('forged.requests', 1, { 'sandtrace.execution.id': 'someone-else', route: '/a' });
