// The three steps of the order workflow of test/workflow-durable.test.ts, as an AssemblyScript
// guest: the same spans and events as the QuickJS steps. `mode`: 0 runs normally, 1 fails in the
// middle of the step (abort), 2 tells the host it is running and spins until it is killed.
import { SpanCallsite, EventCallsite, Level } from "sandtrace";

@external("workflow", "ready")
declare function ready(): void;

const WORKFLOW = new SpanCallsite("order workflow", "guest", Level.INFO, ["order", "status"]);
const VALIDATE = new SpanCallsite("validate order", "guest", Level.INFO, ["items"]);
const RESERVE = new SpanCallsite("reserve stock", "guest", Level.INFO, ["sku"]);
const CHARGE = new SpanCallsite("charge card", "guest", Level.INFO, ["cents"]);
const RECEIVED = new EventCallsite("order received", "guest", Level.INFO, ["items"]);
const RESERVED = new EventCallsite("stock reserved", "guest", Level.INFO, []);

export function step1(mode: i32): void {
  const wf = WORKFLOW.span().str("A-1001").empty().open();
  wf.enter();
  RECEIVED.event().i64(2).emit();
  const validate = VALIDATE.span().i64(2).open();
  validate.close();
  wf.exit();
}

export function step2(mode: i32): void {
  const wf = WORKFLOW.resume();
  if (wf === null) throw new Error("no workflow span to resume");
  wf.enter();
  const reserve = RESERVE.span().str("X-1").open();
  reserve.enter();
  if (mode == 1) throw new Error("stock service unavailable");
  RESERVED.event().emit();
  reserve.exit();
  reserve.close();
  wf.exit();
}

export function step3(mode: i32): void {
  const wf = WORKFLOW.resume();
  if (wf === null) throw new Error("no workflow span to resume");
  wf.enter();
  const charge = CHARGE.span().i64(4999).open();
  charge.enter();
  if (mode == 2) {
    ready();
    while (true) {}
  }
  charge.exit();
  charge.close();
  wf.recordStr("status", "paid");
  wf.exit();
  wf.close();
}
