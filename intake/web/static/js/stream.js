// The /api/v1/stream WebSocket: pushed events, no polling. After a drop it reconnects with backoff and
// resumes from the last cursor it saw, so nothing published meanwhile is missed.
export class Stream {
  constructor({ onEvent, onState, params = {} }) {
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.params = params;
    this.cursor = null;
    this.delay = 500;
    this.socket = null;
    this.closed = false;
  }

  url() {
    const query = new URLSearchParams(this.params);
    if (this.cursor !== null) query.set("cursor", String(this.cursor));
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const qs = query.toString();
    return `${proto}//${window.location.host}/api/v1/stream${qs ? `?${qs}` : ""}`;
  }

  start() {
    this.onState("connecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("message", (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === "hello") {
        if (this.cursor === null) this.cursor = data.cursor;
        this.delay = 500;
        this.onState("live");
        return;
      }
      if (data.type === "event") {
        this.cursor = data.cursor;
        this.onEvent(data);
      }
    });
    socket.addEventListener("close", () => {
      if (this.closed) return;
      this.onState("offline");
      const wait = this.delay * (0.8 + Math.random() * 0.4);
      this.delay = Math.min(this.delay * 2, 15000);
      setTimeout(() => this.start(), wait);
    });
  }

  stop() {
    this.closed = true;
    this.socket?.close();
  }
}
