// migratrack dashboard: follows the event stream, applies changes in place, confirms and posts
// controls. Plain JavaScript, no dependencies; every text goes in through textContent.
"use strict";

(function () {
  const STREAM_GRACE_MS = 5000;   // a stream that stays down this long: poll instead
  const POLL_MS = 5000;           // polling interval while the stream is down
  const REFRESH_MS = 250;         // coalesce bursts of events into one refresh
  const PICTURES_MS = 5000;       // the timeline and charts refresh at most this often
  const STALE_MS = 15000;         // older than this, the page says it is stale

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // -- controls: confirm, post, show the result -------------------------------------------------
  function showResult(ok, message) {
    let box = document.getElementById("result");
    if (!box) return;
    box.hidden = false;
    box.className = "flash " + (ok ? "flash-ok" : "flash-error");
    box.textContent = message;
  }

  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("action")) return;
    ev.preventDefault();
    const question = form.dataset.confirm || "Are you sure?";
    if (!window.confirm(question)) {
      showResult(true, "Nothing done.");
      return;
    }
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    // getAttribute: a field named "action" shadows form.action
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: new FormData(form),
      headers: {"Accept": "application/json", "X-CSRF-Token": csrfToken()},
      credentials: "same-origin",
    }).then(function (r) {
      return r.json().catch(function () { return {ok: false, message: "the server answered " + r.status}; });
    }).then(function (body) {
      showResult(!!body.ok, body.message || body.detail || "done");
      if (live) live.refreshSoon();
    }).catch(function (err) {
      showResult(false, "could not reach the server: " + err);
    }).finally(function () {
      if (button) button.disabled = false;
    });
  });

  // -- sub-tasks: fetched when a phase is expanded, a page at a time ----------------------------
  function loadInto(container, url, append) {
    fetch(url, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.text();
    }).then(function (html) {
      const doc = new DOMParser().parseFromString(html, "text/html");
      if (!append) container.replaceChildren();
      const old = container.querySelector("p.more-wrap");
      if (old) old.remove();
      doc.body.childNodes.forEach(function (n) {
        const node = document.importNode(n, true);
        if (node.querySelector && node.querySelector("a.more")) node.classList.add("more-wrap");
        container.appendChild(node);
      });
    }).catch(function (err) {
      container.textContent = "could not load the sub-tasks: " + err.message;
    });
  }

  document.addEventListener("toggle", function (ev) {
    const d = ev.target;
    if (!(d instanceof HTMLDetailsElement) || !d.classList.contains("subtasks") || !d.open) return;
    if (d.dataset.loaded) return;
    d.dataset.loaded = "1";
    loadInto(d.querySelector(".subtasks-body"), d.dataset.src, false);
  }, true);

  document.addEventListener("click", function (ev) {
    const a = ev.target instanceof Element ? ev.target.closest("a.more") : null;
    if (!a) return;
    const body = a.closest(".subtasks-body");
    if (!body) return;
    ev.preventDefault();
    loadInto(body, a.href, true);
  });

  // -- live updates -------------------------------------------------------------------------------
  let live = null;

  function Live(root) {
    this.root = root;
    this.base = root.dataset.base;
    this.lastSeq = parseInt(root.dataset.lastSeq || "0", 10);
    this.lastUpdate = Date.now();
    this.state = "connecting";
    this.source = null;
    this.pollTimer = null;
    this.graceTimer = null;
    this.refreshTimer = null;
    this.refreshing = false;
    this.again = false;
    this.picturesAt = 0;
    this.phases = new Map();
    root.querySelectorAll("[data-phase]").forEach((li) => this.phases.set(li.dataset.phase, li));
  }

  Live.prototype.setState = function (state, label) {
    this.state = state;
    const conn = document.getElementById("conn");
    if (!conn) return;
    conn.className = "conn conn-" + state;
    conn.querySelector("[data-conn]").textContent = label;
  };

  Live.prototype.connect = function () {
    if (this.source) this.source.close();
    const es = new EventSource(this.base + "/stream?after=" + this.lastSeq);
    this.source = es;
    es.onopen = () => {
      clearTimeout(this.graceTimer);
      this.graceTimer = null;
      this.stopPolling();
      this.setState("live", "live");
      this.lastUpdate = Date.now();
      this.refreshSoon();  // anything that changed while the stream was down
    };
    es.onmessage = (msg) => this.onEvent(msg);
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // the server refused the stream (a restart, an ended session): poll, and try again later
        this.startPolling();
        setTimeout(() => { if (this.source === es) this.connect(); }, POLL_MS);
        return;
      }
      // the browser reconnects by itself, sending Last-Event-ID; poll if that takes too long
      this.setState("reconnecting", "reconnecting…");
      if (!this.graceTimer) this.graceTimer = setTimeout(() => { this.graceTimer = null; this.startPolling(); },
        STREAM_GRACE_MS);
    };
  };

  Live.prototype.onEvent = function (msg) {
    let e;
    try { e = JSON.parse(msg.data); } catch (_) { return; }
    if (typeof e.seq !== "number" || e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    this.addActivity({seq: e.seq, ts: e.ts, type: e.type, actor: e.actor, detail: detailOf(e.payload)});
    if (e.type === "phase.progress" && e.payload) this.applyProgress(e.payload);
    this.lastUpdate = Date.now();
    this.refreshSoon();
  };

  // a progress event carries the phase's new value: show it now; the refresh that follows brings
  // what depends on it (overall progress, ETA, sub-task roll-ups)
  Live.prototype.applyProgress = function (payload) {
    const li = this.phases.get(payload.phase);
    if (!li || typeof payload.progress !== "number") return;
    const bar = li.querySelector('progress[data-p="progress"]');
    if (!bar || payload.progress <= bar.value) return;  // a roll-up may already be ahead
    const label = payload.progress.toFixed(1) + "%";
    bar.value = payload.progress;
    bar.textContent = label;
    setText(li.querySelector('[data-p="progress_text"]'), label);
    if (typeof payload.total === "number" && typeof payload.done === "number") {
      setText(li.querySelector('[data-p="count"]'),
        payload.done.toLocaleString("en-US") + " / " + payload.total.toLocaleString("en-US"));
    }
  };

  Live.prototype.startPolling = function () {
    if (this.pollTimer) return;
    this.setState("polling", "stream down — polling every 5 s");
    this.pollTimer = setInterval(() => this.refresh(true), POLL_MS);
    this.refresh(true);
  };

  Live.prototype.stopPolling = function () {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  };

  Live.prototype.refreshSoon = function () {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => { this.refreshTimer = null; this.refresh(false); }, REFRESH_MS);
  };

  Live.prototype.refresh = function (withEvents) {
    if (this.refreshing) { this.again = true; return; }
    this.refreshing = true;
    const url = this.base + "/live.json" + (withEvents ? "?after=" + this.lastSeq : "");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}}).then((r) => {
      if (r.status === 401) { this.setState("offline", "logged out — reload the page to log in"); return null; }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then((body) => {
      if (!body) return;
      if (withEvents) {
        body.events.forEach((e) => {
          if (e.seq > this.lastSeq) { this.lastSeq = e.seq; this.addActivity(e); }
        });
      }
      this.apply(body);
      this.lastUpdate = Date.now();
      // a large migration's snapshot is rebuilt at most every so often: ask again until it has
      // caught up with the events this page has seen
      if (body.last_seq < this.lastSeq) setTimeout(() => this.refreshSoon(), 500);
      if (withEvents && body.more_events) this.again = "events";  // a long outage: read on
    }).catch((err) => {
      if (this.state !== "live") this.setState("offline", "server unreachable (" + err.message + ") — retrying");
    }).finally(() => {
      this.refreshing = false;
      if (this.again) { const events = this.again === "events"; this.again = false; this.refresh(events); }
    });
  };

  function setText(el, value) {
    if (el && el.textContent !== String(value)) el.textContent = value;
  }

  Live.prototype.apply = function (body) {
    const root = this.root;
    Object.keys(body.header).forEach((k) => setText(root.querySelector('[data-h="' + k + '"]'), body.header[k]));
    const overall = document.getElementById("overall");
    if (overall) { overall.value = body.overall; overall.textContent = body.header.progress; }
    body.phases.forEach((p) => {
      const li = this.phases.get(p.id);
      if (!li) return;
      li.className = "phase cond-" + p.condition;
      const bar = li.querySelector('progress[data-p="progress"]');
      if (bar) { bar.value = p.progress; bar.textContent = p.progress_text; }
      ["progress_text", "count", "actual", "errors", "warnings", "sub_done", "last_error"].forEach((k) =>
        setText(li.querySelector('[data-p="' + k + '"]'), p[k]));
      const badge = li.querySelector('[data-p="condition_label"]');
      if (badge) { badge.className = "badge cond-" + p.condition; setText(badge, p.condition_label); }
      const err = li.querySelector('[data-p="last_error"]');
      if (err) err.hidden = !p.last_error;
      const approve = li.querySelector("form.approve");
      if (approve) approve.hidden = !p.approvable;
      const subs = li.querySelector("details.subtasks[open]");
      if (subs && subs.dataset.loaded && subs.dataset.done !== String(p.sub_done) + "/" + p.progress) {
        subs.dataset.done = String(p.sub_done) + "/" + p.progress;
        loadInto(subs.querySelector(".subtasks-body"), subs.dataset.src, false);
      }
    });
    const can = body.can;
    [["pause", can.pause], ["resume", can.resume], ["cancel", can.cancel]].forEach(([name, shown]) => {
      const form = root.querySelector("form.ctl-" + name);
      if (form) form.hidden = !shown;
    });
    this.applyAlerts(body.alerts, can.ack);
    if (Date.now() - this.picturesAt > PICTURES_MS) this.refreshPictures();
  };

  Live.prototype.applyAlerts = function (alerts, canAck) {
    const list = document.getElementById("alerts");
    if (!list) return;
    const key = alerts.map((a) => a.id + (a.acknowledged ? "+" : "-")).join(",");
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    const csrf = csrfToken();
    list.replaceChildren();
    if (!alerts.length) {
      const li = document.createElement("li"); li.className = "none"; li.textContent = "No alerts."; list.appendChild(li);
      return;
    }
    alerts.forEach((a) => {
      const li = document.createElement("li");
      li.className = "alert level-" + a.level + (a.acknowledged ? " acked" : "");
      li.dataset.alert = a.id;
      const badge = document.createElement("span"); badge.className = "badge level-" + a.level; badge.textContent = a.level;
      const msg = document.createElement("span"); msg.className = "msg"; msg.textContent = a.message;
      const small = document.createElement("small");
      small.textContent = (a.phase ? a.phase + " · " : "") + a.created +
        (a.acknowledged ? " · acknowledged by " + a.acknowledged_by : "");
      li.append(badge, " ", msg, " ", small);
      const action = (path, cls, confirm, label) => {
        const form = document.createElement("form");
        form.method = "post";
        form.action = this.base + "/alerts/" + encodeURIComponent(a.id) + "/" + path;
        form.className = "action " + cls;
        form.dataset.confirm = confirm;
        const input = document.createElement("input"); input.type = "hidden"; input.name = "csrf"; input.value = csrf;
        const button = document.createElement("button"); button.type = "submit"; button.textContent = label;
        form.append(input, button);
        li.appendChild(form);
      };
      if (canAck && !a.acknowledged) action("ack", "ack", "Acknowledge this alert?", "Acknowledge");
      if (canAck) {
        action("silence", "silence", "Mute alerts like this one (same phase and message) for an hour?", "Silence 1 h");
      }
      list.appendChild(li);
    });
  };

  Live.prototype.refreshPictures = function () {
    this.picturesAt = Date.now();
    fetch(this.base + "/pictures", {credentials: "same-origin"}).then((r) => r.ok ? r.text() : null).then((html) => {
      if (!html) return;
      const doc = new DOMParser().parseFromString(html, "text/html");
      const fresh = doc.getElementById("pictures");
      const old = document.getElementById("pictures");
      if (fresh && old) old.replaceWith(document.importNode(fresh, true));
    }).catch(() => {});
  };

  Live.prototype.addActivity = function (e) {
    const list = document.getElementById("activity");
    if (!list) return;
    const li = document.createElement("li");
    li.dataset.seq = e.seq;
    const seq = document.createElement("span"); seq.className = "seq"; seq.textContent = "#" + e.seq;
    const ts = document.createElement("time"); ts.textContent = e.ts;
    const type = document.createElement("strong"); type.textContent = e.type;
    const actor = document.createElement("span"); actor.className = "actor"; actor.textContent = e.actor;
    const detail = document.createElement("span"); detail.className = "detail"; detail.textContent = e.detail;
    li.append(seq, " ", ts, " ", type, " ", actor, " ", detail);
    list.prepend(li);
    while (list.children.length > 500) list.lastElementChild.remove();
  };

  Live.prototype.tick = function () {
    const age = Math.round((Date.now() - this.lastUpdate) / 1000);
    const stamp = document.getElementById("last-update");
    if (stamp) {
      const d = new Date(this.lastUpdate);
      stamp.dateTime = d.toISOString();
      stamp.textContent = d.toLocaleTimeString();
    }
    setText(document.getElementById("age"), "(" + age + " s ago)");
    const conn = document.getElementById("conn");
    if (conn) conn.classList.toggle("stale", this.state !== "live" && Date.now() - this.lastUpdate > STALE_MS);
  };

  function detailOf(payload) {
    if (!payload) return "";
    return Object.keys(payload).filter((k) => k !== "id" && k !== "created_at" && k !== "phases")
      .map((k) => k + "=" + (typeof payload[k] === "object" ? JSON.stringify(payload[k]) : payload[k]))
      .join(" ").slice(0, 300);
  }

  function start() {
    const root = document.getElementById("migration");
    if (!root) return;
    live = new Live(root);
    window.migratrackLive = live;  // for tests and the curious: state, lastSeq
    live.connect();
    setInterval(() => live.tick(), 1000);
    live.tick();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
