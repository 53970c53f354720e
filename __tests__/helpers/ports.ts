/** A free TCP port on 127.0.0.1 for a server a test starts (the same as `npm run rehearse` uses). */
export { freePort } from "../../tools/local-registry.js";
