// The WebSocket connection: reconnects on its own with jittered exponential
// backoff (docs/protocol.md) and resumes the tail from the last positions.
import { backoffDelay, PROTOCOL } from "./store.js";

const HELLO_TIMEOUT_MS = 10000; // an open socket that says nothing this long is dropped
const SILENCE_MS = 15000;       // snapshots come 4×/s: this much silence means a dead connection
const OFFLINE_AFTER = 6;        // failed attempts in a row (about 30 s) after which the page says "offline"

/**
 * Connection states: "connecting" (first attempt), "live", "reconnecting"
 * (retryAt says when), "offline" (the browser has no network and waits for
 * it, or the fan-out has been unreachable for OFFLINE_AFTER attempts in a
 * row; retryAt is then set and the attempts go on).
 */
export class Connection {
  /**
   * @param {object} o
   * @param {string} o.url WebSocket URL
   * @param {(msg: object, receivedAt: number) => void} o.onMessage
   * @param {(state: string, info: object) => void} o.onState
   * @param {(hello: object, reconnect: boolean) => void} o.onHello
   */
  constructor(o) {
    this.o = o;
    this.ws = null;
    this.state = "connecting";
    this.attempt = 0;      // failed attempts since the last hello
    this.everLive = false;
    this.retryTimer = 0;
    this.retryAt = 0;
    this.lastMessage = 0;
    this.watchdog = 0;
    this.hello = null;
    this.closeInfo = "";
    this.onOnline = () => { if (this.state === "offline" || this.state === "reconnecting") this.retryNow(); };
    this.onOffline = () => { if (this.ws) this.ws.close(); };
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
  }

  start() {
    this.connect();
  }

  retryNow() {
    if (this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** restart closes the socket: the connection starts over as after any close. */
  restart(why) {
    if (this.ws) this.ws.close(4000, why);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.hello) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  setState(state, info = {}) {
    this.state = state;
    this.o.onState(state, info);
  }

  connect() {
    this.retryTimer = 0;
    if (navigator.onLine === false) {
      this.setState("offline", { reason: "the browser is offline" });
      return;
    }
    if (!this.everLive) this.setState("connecting", {});
    let ws;
    try {
      ws = new WebSocket(this.o.url);
    } catch (e) {
      this.scheduleRetry(String(e && e.message || e));
      return;
    }
    this.ws = ws;
    this.hello = null;
    this.lastMessage = performance.now();
    const openedAt = this.lastMessage;
    ws.onmessage = (m) => {
      const now = Date.now();
      this.lastMessage = performance.now();
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return; // not JSON: ignore, as unknown messages are
      }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "hello" && !this.hello) {
        const reconnect = this.everLive;
        this.hello = msg;
        this.attempt = 0;
        this.everLive = true;
        this.setState("live", { hello: msg });
        this.o.onHello(msg, reconnect);
        return;
      }
      this.o.onMessage(msg, now);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.hello = null;
      let why = "connection closed";
      if (ev.code === 1001) why = "server restarting";
      else if (ev.code === 1008) why = "closed by server: policy violation";
      else if (ev.code === 4008) why = "closed by server: too slow";
      else if (ev.code === 1006) why = "connection lost";
      if (ev.reason) why += " (" + ev.reason + ")";
      this.scheduleRetry(why);
    };
    ws.onerror = () => {}; // onclose follows and carries the information
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (this.ws !== ws) { clearInterval(this.watchdog); return; }
      const quiet = performance.now() - this.lastMessage;
      if ((!this.hello && performance.now() - openedAt > HELLO_TIMEOUT_MS) || (this.hello && quiet > SILENCE_MS)) {
        ws.close();
        this.ws = null;
        this.hello = null;
        this.scheduleRetry("no data from the server for " + Math.round(quiet / 1000) + " s");
      }
    }, 1000);
  }

  scheduleRetry(why) {
    clearInterval(this.watchdog);
    if (navigator.onLine === false) {
      this.setState("offline", { reason: "the browser is offline" });
      return;
    }
    const wait = backoffDelay(this.attempt++);
    this.retryAt = performance.now() + wait;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
    this.setState(this.attempt > OFFLINE_AFTER ? "offline" : "reconnecting", { retryAt: this.retryAt, reason: why });
  }
}

/**
 * wsURL is /ws on this origin with the protocol this page speaks (the
 * server sends deltas only to pages that say so), passing on an access
 * token from the page URL.
 */
export function wsURL(loc) {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  let url = proto + "//" + loc.host + "/ws?protocol=" + PROTOCOL;
  const token = new URLSearchParams(loc.search).get("access_token");
  if (token) url += "&access_token=" + encodeURIComponent(token);
  return url;
}
