/**
 * Wait until a child's stderr prints a line matching `re`, then keep draining it in the background so
 * the child never blocks on a full pipe. Shared by the bench and the demo.
 */
export async function waitForStderr(stderr: ReadableStream<Uint8Array>, re: RegExp): Promise<RegExpMatchArray> {
  const reader = stderr.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`process exited before printing ${re}:\n${text}`);
    text += decoder.decode(value, { stream: true });
    const m = text.match(re);
    if (m) {
      void (async () => {
        for (;;) if ((await reader.read()).done) break;
      })();
      return m;
    }
  }
}
