import type { udp } from "bun";
import { FtxError } from "../errors.ts";
import type { Catalog } from "../files/catalog.ts";
import { silentLogger, type Logger } from "../log.ts";
import { formatAddress } from "../net/address.ts";

export interface FileServiceOptions {
  host: string;
  port: number;
  catalog: Catalog;
  token?: string;
  logger?: Logger;
}

/** The file server's UDP side: one socket for every download session. */
export class FileService {
  private constructor(
    private readonly socket: udp.Socket<"uint8array">,
    private readonly opts: FileServiceOptions,
    private readonly logger: Logger,
  ) {}

  static async start(opts: FileServiceOptions): Promise<FileService> {
    let socket: udp.Socket<"uint8array">;
    try {
      socket = await Bun.udpSocket({ hostname: opts.host, port: opts.port, binaryType: "uint8array" });
    } catch (err) {
      throw new FtxError("E_IO", `cannot bind UDP ${formatAddress(opts.host, opts.port)}: ${(err as Error).message}`);
    }
    return new FileService(socket, opts, opts.logger ?? silentLogger);
  }

  get port(): number {
    return this.socket.port;
  }

  stop(): void {
    this.socket.close();
  }
}
