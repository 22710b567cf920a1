// A QuickJS guest that tries to take over the terminal of whoever runs `sandtrace run` on it:
// span names, field names and values, messages, a metric and the uncaught error carry ESC/CSI/OSC
// sequences, BEL, backspace, carriage returns, newlines, C1 controls and bidi overrides. The error
// tries to rewrite its own ✖ failure line into "✔ completed".
const forged = '\r\x1b[1A\x1b[2K✔ completed → 3\x1b[8m';
tracing.inSpan('load\x1b[2J\x1b[H\x1b]0;pwned\x07', { 'user\x1b[31m': 'a\bb', 'note\u202e': '\u202etxt.exe', c1: '\x9b31m\x9d0;title\x9c' }, () => {
  tracing.info('\r\x1b[2K✔ completed\x1b]8;;http://evil.example/\x1b\\', { link: '\x1b]8;;http://evil.example/\x07x', del: 'a\x7fb', nl: 'one\ntwo' });
  tracing.warn('plain message', { ['k\x1b[K\u2066']: { toJSON: () => '\x1b[5m' } });
  tracing.counter('hits\x1b[31m', 1, { 'a\x00\x1b': 'b\u2028c' });
  throw new Error(forged);
});
