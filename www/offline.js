// Offline use: registers the service worker (sw.js), which keeps the page, its code and the
// built-in model for visits without a network. registerOffline never throws and never holds
// the page up: a failure is logged, handed to `onMessage` as a sentence for the page, and the
// page goes on as an online page.

const MODEL = "assets/enet-camvid.safetensors";
// Registration waits at most this long for the page's own download of the model (see below).
const MODEL_WAIT_MS = 60000;

const reasonOf = (e) => ((e && e.message) || String(e)).replace(/\.$/, "");

/**
 * Registers ./sw.js where service workers exist (https:, or http: on this computer). Returns
 * a Promise of whether registration went through; it never rejects.
 */
export function registerOffline(onMessage = () => {}) {
  let told = false;
  const fail = (why) => {
    if (told) return;
    told = true;
    const text = `Offline use is unavailable: ${why}. The page works as long as it is online.`;
    console.warn(text);
    try {
      onMessage(text);
    } catch (e) {
      console.warn(e);
    }
  };
  try {
    if (!window.isSecureContext || !("serviceWorker" in navigator)) {
      console.info("Offline use is unavailable: this browser offers no service workers to this page.");
      return Promise.resolve(false);
    }
    const container = navigator.serviceWorker;
    let registration = null;
    // An installed worker keeps serving when its update fails: then only the console is told.
    const installed = () => Boolean(container.controller || (registration && registration.active));
    let failed = false;
    const failedInstall = (why) => {
      if (failed) return;
      failed = true;
      if (installed()) console.warn(`The offline copy of the page was not updated: ${why}.`);
      else fail(`the service worker could not store the page's files (${why})`);
    };
    container.addEventListener("message", (e) => {
      if (e.data && e.data.type === "enet-offline-error") failedInstall(e.data.reason);
    });
    container.startMessages();
    // A worker that fails to install becomes "redundant"; the worker's message (with the
    // reason) normally comes first.
    const watch = (worker) =>
      worker &&
      worker.addEventListener("statechange", () => {
        if (worker.state === "redundant" && !registration.installing && !registration.waiting) {
          setTimeout(() => failedInstall("one of them could not be downloaded"), 1000);
        }
      });
    return afterModelDownload()
      .then(() => container.register("./sw.js", { scope: "./" }))
      .then((r) => {
        registration = r;
        watch(r.installing);
        r.addEventListener("updatefound", () => watch(r.installing));
        return true;
      })
      .catch((e) => {
        // Offline, the update check of an installed worker fails; its copy still serves.
        if (installed()) return true;
        fail(`the service worker could not be registered (${reasonOf(e)})`);
        return false;
      });
  } catch (e) {
    fail(`the service worker could not be registered (${reasonOf(e)})`);
    return Promise.resolve(false);
  }
}

// The worker's install stores the model too. Started while the page itself is still
// downloading it, that would download the model a second time; once the page's download is
// over, the install finds it in the HTTP cache (a 304 at most). The page's download shows as a
// resource timing entry when it ends; a page that never fetches the model waits MODEL_WAIT_MS.
function afterModelDownload() {
  return new Promise((resolve) => {
    const url = new URL(MODEL, document.baseURI).href;
    let observer = null;
    const done = () => {
      clearTimeout(timer);
      if (observer) observer.disconnect();
      resolve();
    };
    const timer = setTimeout(done, MODEL_WAIT_MS);
    if (performance.getEntriesByName(url).length) return done();
    if (typeof PerformanceObserver !== "function") return;
    observer = new PerformanceObserver((list) => {
      if (list.getEntries().some((e) => e.name === url)) done();
    });
    observer.observe({ type: "resource", buffered: true });
  });
}
