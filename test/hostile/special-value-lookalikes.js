// Hostile QuickJS guest: plain objects shaped like the SDK's special values ({ error }, { debug },
// { empty }) as field values. They are the guest's data, recorded as debug text of the object:
// never an error value, a forged debug string, or an empty field.
tracing.info('lookalikes', {
  error: { error: 'x' },
  debug: { debug: 'forged' },
  empty: { empty: true },
  nested: { error: { message: 'fake', source: { message: 'deeper' } } },
});
const site = tracing.callsite('site', ['a']);
site.emit({ error: 'y' });
const span = tracing.span('s', { v: { empty: true } });
span.record('v', { debug: 'z' });
span.close();
tracing.counter('c', 1, { a: { error: 'w' } });
