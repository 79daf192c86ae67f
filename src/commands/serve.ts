import { defineCommand } from "citty";
import { untilSignal } from "../cli/until-signal.ts";
import type { FtxError } from "../errors.ts";
import { Catalog } from "../files/catalog.ts";
import { Registration } from "../index/registration.ts";
import { createLogger } from "../log.ts";
import { bareHost, formatAddress, parseBindHost, parseHostPort, parsePort } from "../net/address.ts";
import { FileService } from "../transfer/file-service.ts";
import { parseListenArg } from "../ops/listen-arg.ts";
import { logArgs, resolveMasters, resolveToken, tokenArg, securityArgs, applySecurityArgs } from "./shared-args.ts";

export default defineCommand({
  args: {
    dir: { type: "positional", required: true, valueHint: "DIR", description: "The folder to share (recursively)" },
    master: { type: "string", valueHint: "HOST:PORT", description: "Master to register with, or a comma-separated list to fail over along (env FTX_MASTER, else 127.0.0.1:7700)" },
    host: { type: "string", default: "0.0.0.0", valueHint: "HOST", description: "UDP address to bind (:: for IPv4+IPv6)" },
    port: { type: "string", default: "0", valueHint: "PORT", description: "UDP port to bind (0: any free port)" },
    advertise: { type: "string", valueHint: "HOST[:PORT]", description: "Address clients are told to send to (behind NAT or a relay)" },
    ...tokenArg,
    ...securityArgs,
    "max-sessions": { type: "string", default: "512", valueHint: "N", description: "Transfers served at once, in all" },
    "max-sessions-per-client": { type: "string", default: "64", valueHint: "N", description: "Transfers served at once to one client address" },
    http: { type: "string", valueHint: "HOST:PORT", description: "Serve /metrics and a page of active transfers here (behind the token when there is one)" },
    ...logArgs,
  },
  async run({ args }) {
    applySecurityArgs(args);
    const masters = resolveMasters(args.master, "--master");
    const host = parseBindHost(args.host);
    const port = parsePort(args.port, "--port", true);
    const httpListen = args.http === undefined ? undefined : parseListenArg(args.http);
    const advertise = args.advertise === undefined ? undefined : parseHostPort(args.advertise, "--advertise", 0);
    const token = resolveToken(args.token);
    const logger = createLogger(args, "serve");

    const catalog = await Catalog.open(args.dir, { logger });
    const maxSessions = parsePort(args["max-sessions"], "--max-sessions", false);
    const maxSessionsPerAddress = parsePort(args["max-sessions-per-client"], "--max-sessions-per-client", false);
    const service = await FileService.start({ host, port, catalog, token, logger, maxSessions, maxSessionsPerAddress });
    let fatal: FtxError | undefined;
    let stopFatal: () => void = () => {};
    const fatalSignal = new Promise<void>((resolve) => (stopFatal = resolve));
    const registration = new Registration({
      masters,
      token,
      advertiseHost: advertise ? bareHost(advertise.host) : undefined,
      advertisePort: advertise && advertise.port !== 0 ? advertise.port : service.port,
      catalog,
      logger,
      onFatal: (err) => {
        fatal = err;
        stopFatal();
      },
    });
    let http: { stop(): void } | undefined;
    if (httpListen) {
      const { ServeHttp } = await import("../ops/serve-http.ts");
      try {
        const h = ServeHttp.start({ listen: httpListen, token, service, root: catalog.root });
        http = h;
        logger.info(`web view on ${h.url}${token ? " (token required)" : ""}`);
      } catch (err) {
        service.stop();
        catalog.stop();
        throw err;
      }
    }
    registration.start();
    logger.info(`serving ${catalog.root} over UDP on ${formatAddress(host, service.port)}, registering with ${registration.display}`);

    const signal = await Promise.race([untilSignal(), fatalSignal]);
    registration.stop();
    http?.stop();
    service.stop();
    catalog.stop();
    if (fatal) throw fatal;
    const c = service.counters;
    logger.info(`${signal}: stopped after ${c.sessions} transfer session(s) (peak ${c.peakConcurrent} at once, ${c.completed} completed, ${c.dropped} bad datagrams dropped)`);
  },
});
