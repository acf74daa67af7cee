// One writer per app across the tabs of a browser.
//
// The tab that holds the Web Lock `py-agent:<app>` is the only one that runs the
// worker and saves. Another tab of the same app waits in the lock's queue and says
// so (AgentClient `tab_conflict`); when the holder closes, the waiting tab gets the
// lock and starts by itself. When the person asks to use the app in the waiting tab,
// it asks the holder over a BroadcastChannel to let go: the holder saves what it has,
// stops its worker and releases the lock, which passes to the asking tab (the queue is
// first come, first served). A holder that does not let go in time (frozen, or stuck)
// loses the lock anyway (`steal`), and notices that it did.

const HANDOVER_MS = 6000; // how long a holder has to save and let go before the lock is stolen

export class WriterLock {
  /**
   * @param {string} app  the app's name (one lock and one channel per app)
   * @param {object} hooks
   * @param {() => Promise<void>} hooks.yieldTo  in the holder, when another tab asks: save and stop
   * @param {() => void} hooks.lost  in the holder, when the lock was taken without its consent
   * @param {() => void} hooks.granted  in a waiting tab, when the lock became its own
   */
  constructor(app, { yieldTo, lost, granted }) {
    this.name = `py-agent:${app}`;
    this.held = false;
    this.hooks = { yieldTo, lost, granted };
    this.letGo = null;
    this.waiting = null; // {done: Promise<boolean>, abort: AbortController} while in the queue
    this.supported = Boolean(globalThis.navigator?.locks && globalThis.BroadcastChannel);
    if (this.supported) {
      this.channel = new BroadcastChannel(this.name);
      this.channel.onmessage = (event) => this.heard(event.data);
    }
  }

  /** Take the lock if nobody holds it. Resolves true when held (always true without Web Locks). */
  async claim() {
    if (!this.supported) return (this.held = true);
    return this.request({ ifAvailable: true });
  }

  /** Queue for the lock (the holder may close, or be asked to let go); `granted` is called when it comes. */
  wait() {
    if (!this.supported || this.held || this.waiting) return;
    const abort = new AbortController();
    const done = this.request({ signal: abort.signal }).catch(() => false);
    this.waiting = { done, abort };
    done.then((held) => {
      this.waiting = null;
      if (held) this.hooks.granted();
    });
  }

  /** Ask the holder to let go; resolves true once the lock is ours (taken by force after HANDOVER_MS). */
  async takeOver() {
    if (!this.supported || this.held) return true;
    this.wait();
    const { done, abort } = this.waiting;
    this.channel.postMessage({ type: "release" });
    const late = new Promise((resolve) => setTimeout(() => resolve("late"), HANDOVER_MS));
    if ((await Promise.race([done, late])) === true) return true;
    abort.abort();
    this.waiting = null;
    return this.request({ steal: true });
  }

  /** Let go of the lock (handing over, or stopping). */
  release() {
    this.held = false;
    this.letGo?.();
    this.letGo = null;
  }

  request(options) {
    return new Promise((resolve, reject) => {
      navigator.locks
        .request(this.name, options, (lock) => {
          if (!lock) return resolve(false);
          this.held = true;
          resolve(true);
          return new Promise((done) => (this.letGo = done)); // held until release()
        })
        .then(
          () => {},
          (error) => {
            if (this.held && error?.name === "AbortError") {
              // Another tab stole the lock: it asked, and this tab did not let go in time.
              this.held = false;
              this.letGo = null;
              this.hooks.lost();
              this.wait();
            } else {
              reject(error);
            }
          },
        );
    });
  }

  async heard(message) {
    if (message?.type !== "release" || !this.held) return;
    try {
      await this.hooks.yieldTo();
    } finally {
      this.release();
      this.wait(); // behind the tab that asked: this one carries on when that one closes
    }
  }
}
