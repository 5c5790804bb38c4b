/**
 * A bare WebSocket client over `node:net`, for the scale bench: Bun's own
 * WebSocket client cannot pick a source address, and 19,000 sockets from
 * 127.0.0.1 alone would crowd one address's ephemeral ports. It does the
 * upgrade by hand, sends masked binary frames and hands back each message's
 * length and bytes; nothing else of RFC 6455 is needed here (servers on
 * 127.0.0.1 do not fragment, and the bench never pings).
 * RFC 6455: https://www.rfc-editor.org/rfc/rfc6455#section-5.2
 */
import net from "node:net";

export interface BareSocket {
  /** Sends one binary message. */
  send(payload: Uint8Array): void;
  close(): void;
}

/** Called with each message the server sends; `payload` is only valid during the call. */
export type OnMessage = (payload: Uint8Array) => void;

// Any key will do: the server's answer is not checked, only its status line.
const UPGRADE = (port: number, path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  "Sec-WebSocket-Key: c2NhbGUtYmVuY2gta2V5MQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/**
 * Opens a WebSocket to 127.0.0.1:port from `localAddress`.
 * @returns the socket, once the server has answered the upgrade with 101
 */
export function openBare(port: number, path: string, localAddress: string, onMessage: OnMessage): Promise<BareSocket> {
  return new Promise((resolve, reject) => {
    const tcp = net.createConnection({ host: "127.0.0.1", port, localAddress, noDelay: true });
    let upgraded = false;
    let pending: Buffer | null = null;
    const socket: BareSocket = { send: (payload) => tcp.write(frame(payload)), close: () => tcp.destroy() };
    tcp.once("connect", () => tcp.write(UPGRADE(port, path)));
    tcp.once("error", reject);
    tcp.on("data", (chunk: Buffer) => {
      let data = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = null;
      if (!upgraded) {
        const end = data.indexOf("\r\n\r\n");
        if (end < 0) {
          pending = data;
          return;
        }
        if (!data.subarray(0, 12).toString().startsWith("HTTP/1.1 101")) return reject(new Error(data.subarray(0, end).toString()));
        upgraded = true;
        data = data.subarray(end + 4);
        resolve(socket);
      }
      const rest = readFrames(data, onMessage);
      if (rest) pending = Buffer.from(rest);
    });
  });
}

/** Hands every whole frame in `data` to `onMessage`; @returns the bytes of an unfinished last frame, if any */
function readFrames(data: Buffer, onMessage: OnMessage): Buffer | null {
  let at = 0;
  while (at + 2 <= data.length) {
    let length = (data[at + 1] as number) & 0x7f;
    let header = 2;
    if (length === 126) {
      if (at + 4 > data.length) break;
      length = data.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      if (at + 10 > data.length) break;
      length = Number(data.readBigUInt64BE(at + 2));
      header = 10;
    }
    if (at + header + length > data.length) break;
    const opcode = (data[at] as number) & 0x0f;
    if (opcode === 0x2) onMessage(data.subarray(at + header, at + header + length));
    at += header + length;
  }
  return at < data.length ? data.subarray(at) : null;
}

/** A client frame: FIN and binary, masked with a zero key (the mask is required; its value is not checked). */
function frame(payload: Uint8Array): Uint8Array {
  const n = payload.byteLength;
  const header = n < 126 ? 6 : 8;
  const out = new Uint8Array(header + n);
  out[0] = 0x82;
  if (n < 126) out[1] = 0x80 | n;
  else {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  }
  out.set(payload, header);
  return out;
}
