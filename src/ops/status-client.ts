import { FtxError } from "../errors.ts";
import { connectToAnyMaster, errorFromMaster } from "../index/index-client.ts";
import { IndexErrorCode, MsgType, Role, type StatusServer } from "../index/core/messages.ts";
import type { HostPort } from "../net/address.ts";
import type { StatusSnapshot } from "./status-report.ts";

const REQUEST_ID = 1;

/**
 * One STATUS round trip on a fresh client connection (`ftx status`). The request rides behind AUTH
 * like ls's LIST; servers come in STATUS_SERVERS frames, then STATUS_END with the counters.
 */
export async function statusFromMaster(targets: HostPort[], token: string | undefined, timeoutMs = 4000): Promise<StatusSnapshot> {
  const session = await connectToAnyMaster(targets, { role: Role.Client, token, timeoutMs, pipelined: [{ type: MsgType.Status, requestId: REQUEST_ID }] });
  let silence: Timer | undefined;
  try {
    return await new Promise<StatusSnapshot>((resolve, reject) => {
      const servers: StatusServer[] = [];
      const expectWordWithin = () => {
        clearTimeout(silence);
        silence = setTimeout(() => reject(new FtxError("E_TIMEOUT", `master ${session.master} stopped answering: nothing for ${(timeoutMs / 1000).toFixed(0)}s before the status was complete`)), timeoutMs);
      };
      session.onClose = (reason) => reject(new FtxError("E_CLOSED", `${reason} before the status was complete`));
      expectWordWithin();
      session.listen((msg) => {
        expectWordWithin();
        if (msg.type === MsgType.StatusServers && msg.requestId === REQUEST_ID) servers.push(...msg.servers);
        else if (msg.type === MsgType.StatusEnd && msg.requestId === REQUEST_ID)
          resolve({ masterId: msg.masterId, startedAtMs: msg.startedAtMs, servers, counters: msg.counters });
        else if (msg.type === MsgType.Error) {
          // A master from before STATUS closes on the unknown type: say so rather than "protocol error".
          if (msg.code === IndexErrorCode.Protocol && /unknown message type 0x23/.test(msg.message))
            reject(new FtxError("E_PROTOCOL", `master ${session.master} does not answer STATUS (an older ftx): ${msg.message}`));
          else reject(errorFromMaster(msg.code, msg.message, session.master));
        }
      });
    });
  } finally {
    clearTimeout(silence);
    session.close();
  }
}
