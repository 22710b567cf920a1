// Hostile QuickJS guest: one 10 MB field value in the middle of a frame it shares with the
// announcement of its callsite and with other events of that callsite (the run sets flushBytes
// large enough for all of them to travel in one frame, larger than maxFrameBytes). Only the
// oversized record may be lost: the announcement and the other three events must arrive.
const huge = 'x'.repeat(10 * 1000 * 1000);
tracing.info('step', { n: 1, payload: 'small' });
tracing.info('step', { n: 2, payload: huge });
tracing.info('step', { n: 3, payload: 'small' });
tracing.info('step', { n: 4, payload: 'small' });
'done';
