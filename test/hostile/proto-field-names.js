// A QuickJS guest whose field and attribute names are the keys that reach an object's prototype
// when a host turns guest names into object keys: `__proto__`, `constructor`, `prototype`.
tracing.inSpan('proto span', { ['__proto__']: { polluted: true }, constructor: 'c' }, () => {
  tracing.info('proto event', { ['__proto__']: 'as text', prototype: 1 });
  tracing.counter('proto metric', 1, { ['__proto__']: { polluted: true } });
});
tracing.info('proto root event', { ['__proto__']: { polluted: true } });
