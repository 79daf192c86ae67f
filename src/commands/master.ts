import { defineCommand } from "citty";
import { untilSignal } from "../cli/until-signal.ts";
import { MasterServer } from "../index/master-server.ts";
import { createLogger } from "../log.ts";
import { formatAddress, parseBindHost, parsePort } from "../net/address.ts";
import { logArgs, parseSeconds, resolveToken, tokenArg } from "./shared-args.ts";

export default defineCommand({
  args: {
    host: { type: "string", default: "0.0.0.0", valueHint: "HOST", description: "Address to listen on (:: for IPv4+IPv6)" },
    port: { type: "string", default: "7700", valueHint: "PORT", description: "TCP port (0: any free port)" },
    ...tokenArg,
    "heartbeat-timeout": { type: "string", default: "6", valueHint: "SECONDS", description: "Drop a silent file server after this long" },
    "max-connections": { type: "string", default: "4096", valueHint: "N", description: "Refuse connections beyond this many" },
    ...logArgs,
  },
  async run({ args }) {
    const host = parseBindHost(args.host);
    const port = parsePort(args.port, "--port", true);
    const heartbeatTimeoutMs = Math.round(parseSeconds(args["heartbeat-timeout"], "--heartbeat-timeout") * 1000);
    const maxConnections = parsePort(args["max-connections"], "--max-connections", false);
    const logger = createLogger(args, "master");
    const token = resolveToken(args.token);
    const server = MasterServer.start({ host, port, token, heartbeatTimeoutMs, logger, maxConnections });
    logger.info(`listening on ${formatAddress(host, server.port)}${token ? " (token required)" : ""}`);
    const signal = await untilSignal();
    logger.info(`${signal}: stopping`);
    server.stop();
  },
});
