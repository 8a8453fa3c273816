// Keeps the function process serving when a library throws outside any request (postgres.js can
// throw from a socket callback when a connection is killed at the wrong moment): the error is
// logged and the process goes on; the request concerned gets its error from its own promise.
let installed = false;

export function guardProcess(): void {
  if (installed) return;
  installed = true;
  const log = (kind: string, reason: unknown) =>
    console.error(JSON.stringify({
      level: "error",
      time: new Date().toISOString(),
      msg: kind,
      error: reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason),
    }));
  addEventListener("error", (event) => {
    event.preventDefault();
    log("uncaught exception", event.error);
  });
  addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log("unhandled rejection", event.reason);
  });
}
