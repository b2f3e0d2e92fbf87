import { DurableObject } from "cloudflare:workers";

// A base class of the project's own, as chat and game servers write them.
export class SocketServer extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.joined = 0;
  }

  // an untyped helper: never an RPC method, never a build error
  handle(socket, meta) {
    this.joined += 1;
    return { socket, meta };
  }
}
