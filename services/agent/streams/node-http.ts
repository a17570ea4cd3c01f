// The Node request and response the plain-HTTP routes (SSE, /metrics) are handed by
// the one port, which serves HTTP/1.1 and HTTP/2 alike. Written out from node:http and
// node:http2 as connect-node defines them (it does not export the names), rather than
// taken from server/, which sits above streams/.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

export type NodeRequest = IncomingMessage | Http2ServerRequest;

/** Either response, with `write` and `writeHead` narrowed to the forms both accept. */
export type NodeResponse = (Omit<ServerResponse, "write"> | Omit<Http2ServerResponse, "write">) & {
  write(chunk: string | Uint8Array, callback?: (err: Error | null | undefined) => void): boolean;
  write(
    chunk: string | Uint8Array,
    encoding: BufferEncoding,
    callback?: (err: Error | null | undefined) => void,
  ): boolean;
  writeHead(status: number, headers?: OutgoingHttpHeaders): unknown;
};
