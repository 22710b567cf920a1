// A QuickJS plugin: handles a request, queries a (pretend) store, reports metrics.
const lookup = tracing.callsite('cache lookup', ['key', 'hit']);

function handle(user) {
  return tracing.inSpan('handle request', { user, items: undefined }, (span) => {
    tracing.info('request received', { route: '/orders' });
    const rows = tracing.inSpan('query orders', { table: 'orders' }, () => {
      for (let i = 0; i < 3; i++) lookup.emit(`order:${i}`, i !== 1);
      return 3;
    });
    span.record('items', rows);
    tracing.counter('orders.listed', rows, { user });
    if (rows > 2) tracing.warn('large result', { rows });
    return rows;
  });
}

handle('alice');
