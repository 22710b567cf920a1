// Hostile QuickJS guest: many distinct large messages in one run (500 of 40 KB). The SDK's cache
// of encoded messages must not keep them all: under a 16 MiB memory limit the run completes.
const chunk = 'x'.repeat(40 * 1024 - 8);
for (let i = 0; i < 500; i++) {
  tracing.info(chunk + String(i).padStart(8, '0'));
}
'done';
