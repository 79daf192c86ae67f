import { defineCommand } from "citty";
import { untilSignal } from "../cli/until-signal.ts";
import { UsageError } from "../errors.ts";
import { MasterServer } from "../index/master-server.ts";
import { RedisStore } from "../index/redis-store.ts";
import { createLogger } from "../log.ts";
import { formatAddress, parseBindHost, parsePort } from "../net/address.ts";
import { parseListenArg } from "../ops/listen-arg.ts";
import { logArgs, parseSeconds, resolveToken, tokenArg, securityArgs } from "./shared-args.ts";

export default defineCommand({
  args: {
    host: { type: "string", default: "0.0.0.0", valueHint: "HOST", description: "Address to listen on (:: for IPv4+IPv6)" },
    port: { type: "string", default: "7700", valueHint: "PORT", description: "TCP port (0: any free port)" },
    ...tokenArg,
    ...securityArgs,
    "heartbeat-timeout": { type: "string", default: "6", valueHint: "SECONDS", description: "Drop a silent file server after this long" },
    "max-connections": { type: "string", default: "4096", valueHint: "N", description: "Refuse connections beyond this many" },
    store: { type: "string", valueHint: "redis://HOST:PORT[/DB]", description: "Share the index with other masters through Redis (env FTX_STORE)" },
    http: { type: "string", valueHint: "HOST:PORT", description: "Serve a read-only web view, /metrics and /api/* here (behind the token when there is one)" },
    ...logArgs,
  },
  async run({ args }) {
    const host = parseBindHost(args.host);
    const port = parsePort(args.port, "--port", true);
    const heartbeatTimeoutMs = Math.round(parseSeconds(args["heartbeat-timeout"], "--heartbeat-timeout") * 1000);
    const maxConnections = parsePort(args["max-connections"], "--max-connections", false);
    const httpListen = args.http === undefined ? undefined : parseListenArg(args.http);
    const logger = createLogger(args, "master");
    const token = resolveToken(args.token);
    const storeUrl = args.store ?? (process.env.FTX_STORE || undefined);
    if (storeUrl !== undefined && !/^rediss?:\/\//.test(storeUrl)) throw new UsageError(`--store: '${storeUrl}' is not a redis:// URL`);
    const store = storeUrl === undefined ? undefined : await RedisStore.connect(storeUrl, heartbeatTimeoutMs, logger);
    let server: MasterServer;
    try {
      server = MasterServer.start({ host, port, token, heartbeatTimeoutMs, logger, maxConnections, store, allowPlaintext: args["insecure-plaintext"] === true });
    } catch (err) {
      store?.close();
      throw err;
    }
    logger.info(`listening on ${formatAddress(host, server.port)}${token ? " (token required, CPace)" : " (no token: encrypted, peers not authenticated)"}${args["insecure-plaintext"] ? ", plaintext allowed" : ""}${storeUrl ? ", index shared through Redis" : ""}`);
    let http: { stop(): void } | undefined;
    if (httpListen) {
      const { MasterHttp } = await import("../ops/master-http.ts");
      try {
        const h = MasterHttp.start({ listen: httpListen, token, master: server, logger });
        http = h;
        logger.info(`web view on ${h.url}${token ? " (token required)" : ""}`);
      } catch (err) {
        server.stop();
        throw err;
      }
    }
    const signal = await untilSignal();
    logger.info(`${signal}: stopping`);
    http?.stop();
    server.stop();
  },
});
