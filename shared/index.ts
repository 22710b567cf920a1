/** The wire protocol shared by guests and host: record types, frame writer and reader. */
export * from './records.js';
export { FrameWriter, utf8Length, writeUtf8 } from './frame-writer.js';
export { FrameReader, RawRecord, FrameError, EMPTY, type FrameFault } from './frame-reader.js';
export { FrameDecoder, EventEncoder, EncodeError, type DecodedFrame } from './event-codec.js';
