// Hostile QuickJS guest: values whose conversion throws (toString, Symbol.toPrimitive, getters,
// Proxy traps) handed to every SDK call that writes a record. Each call must throw to the guest
// and leave no half-written record behind: the records around them arrive intact.
const boom = (what) => () => { throw new Error(what); };
const noString = { toJSON: boom('toJSON'), toString: boom('toString'), valueOf: boom('valueOf') };
const noPrimitive = { get x() { throw new Error('getter'); }, [Symbol.toPrimitive]: boom('toPrimitive') };
const trap = new Proxy({}, { has: boom('has trap'), get: boom('get trap'), ownKeys: boom('ownKeys trap'), getPrototypeOf: boom('prototype trap') });
const trapInValues = new Proxy({}, { has: boom('trap'), get: boom('trap') });

const caught = [];
function attempt(label, fn) {
  try {
    fn();
    caught.push(label + ': no error');
  } catch (e) {
    caught.push(label + ': ' + e.message);
  }
}

tracing.info('first', { n: 1 });
attempt('info field', () => tracing.info('never', { a: 1, b: noString }));
tracing.info('second', { n: 2 });
attempt('info proxy field', () => tracing.warn('never', { a: 'x', p: trapInValues }));
tracing.info('third', { n: 3 });
attempt('info message', () => tracing.info(noPrimitive, { a: 1 }));
const site = tracing.callsite('site', ['a', 'b', 'c']);
attempt('emit second', () => site.emit(1, noPrimitive, 3));
attempt('emit third', () => site.emit(1, 2, noString));
site.emit(4, 5, 6);
const span = tracing.span('kept', { v: undefined });
attempt('record', () => span.record('v', noString));
span.record('v', 7);
attempt('span field', () => tracing.span('never', { a: 1, b: noPrimitive }));
attempt('span link', () => tracing.span('never', { a: 1 }, { link: noString }));
attempt('span parent', () => tracing.span('never', { a: 1 }, { parent: { get id() { throw new Error('parent id'); } } }));
attempt('counter attribute', () => tracing.counter('never', 1, { a: 1, b: noString }));
attempt('counter name', () => tracing.counter(noString, 1));
attempt('counter value', () => tracing.counter('never', noPrimitive));
tracing.counter('kept', 2, { a: 1 });
span.close();
tracing.info('last', { n: 4 });
caught;
