// Hostile QuickJS guest: level names the SDK does not know ('fatal', 'Info', a number, an object
// that prints as 'info') passed to every option that takes a level. Each is a TypeError at the
// call that names the accepted levels; nothing is written, and the known levels keep working.
const caught = [];
function attempt(label, fn) {
  try {
    fn();
    caught.push(label + ': no error');
  } catch (e) {
    caught.push(label + ': ' + e.name + ': ' + e.message);
  }
}
for (const level of ['fatal', 'Info', 2, { toString: () => 'info' }, null, '__proto__']) {
  const shown = typeof level === 'string' ? level : String(level);
  attempt('span ' + shown, () => tracing.span('s', {}, { level }));
  attempt('callsite ' + shown, () => tracing.callsite('c', [], { level }));
  attempt('enabled ' + shown, () => tracing.enabled(level));
}
tracing.span('ok', {}, { level: 'warn' }).close();
tracing.callsite('ok site', [], { level: 'error' }).emit();
tracing.span('default level').close();
[caught, tracing.enabled('info'), tracing.enabled('trace')];
