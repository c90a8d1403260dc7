/* Tabs (WAI-ARIA tabs pattern), PDU search and the lookup-code check. No network use. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  /* ---- SHA-256: Web Crypto where available (secure contexts), else pure JavaScript. ---- */
  var K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ];

  function utf8Bytes(text) {
    if (typeof TextEncoder !== "undefined") return new TextEncoder().encode(text);
    var binary = unescape(encodeURIComponent(text));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function toHex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
    return out;
  }

  function rotr(x, n) { return (x >>> n) | (x << (32 - n)); }

  var IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

  /* One SHA-256 compression: `state` (8 words) updated by the 16 words at w[0..15]. */
  function compress(state, w) {
    for (var i = 16; i < 64; i++) {
      var s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      var s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    var a = state[0], b = state[1], c = state[2], d = state[3];
    var e = state[4], f = state[5], g = state[6], k = state[7];
    for (i = 0; i < 64; i++) {
      var t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                K[i] + w[i]) >>> 0;
      var t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    return [(state[0] + a) >>> 0, (state[1] + b) >>> 0, (state[2] + c) >>> 0,
            (state[3] + d) >>> 0, (state[4] + e) >>> 0, (state[5] + f) >>> 0,
            (state[6] + g) >>> 0, (state[7] + k) >>> 0];
  }

  /* SHA-256 state after `bytes`, continuing from `state` that has already hashed `before`
     bytes (a multiple of 64), with the final padding. */
  function finish(state, bytes, before) {
    var length = Math.ceil((bytes.length + 9) / 64) * 64;
    var data = new Uint8Array(length);
    data.set(bytes);
    data[bytes.length] = 0x80;
    var view = new DataView(data.buffer);
    var bits = (before + bytes.length) * 8;
    view.setUint32(length - 8, Math.floor(bits / 0x100000000));
    view.setUint32(length - 4, bits >>> 0);
    var w = new Uint32Array(64);
    for (var offset = 0; offset < length; offset += 64) {
      for (var i = 0; i < 16; i++) w[i] = view.getUint32(offset + 4 * i);
      state = compress(state, w);
    }
    return state;
  }

  function wordsToBytes(words) {
    var bytes = new Uint8Array(4 * words.length);
    var view = new DataView(bytes.buffer);
    for (var i = 0; i < words.length; i++) view.setUint32(4 * i, words[i]);
    return bytes;
  }

  function sha256Fallback(text) { return toHex(wordsToBytes(finish(IV, utf8Bytes(text), 0))); }

  function hexBytes(hex) {
    var bytes = new Uint8Array(hex.length / 2);
    for (var i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
    return bytes;
  }

  /* PBKDF2-HMAC-SHA256 in plain JavaScript, for browsers without Web Crypto: two
     compressions per round, the HMAC pads hashed once. */
  function pbkdf2Fallback(password, salt, iterations, bits) {
    if (password.length > 64) password = wordsToBytes(finish(IV, password, 0));
    var pads = [0x36, 0x5c].map(function (pad) {
      var block = new Uint8Array(64);
      var w = new Uint32Array(64);
      for (var i = 0; i < 64; i++) block[i] = (password[i] || 0) ^ pad;
      var view = new DataView(block.buffer);
      for (i = 0; i < 16; i++) w[i] = view.getUint32(4 * i);
      return compress(IV, w);
    });
    var out = [];
    var w = new Uint32Array(64);
    for (var index = 1; out.length * 32 < bits / 8; index++) {
      var first = new Uint8Array(salt.length + 4);
      first.set(salt);
      new DataView(first.buffer).setUint32(salt.length, index);
      var u = finish(pads[1], wordsToBytes(finish(pads[0], first, 64)), 64);
      var t = u.slice();
      for (var round = 1; round < iterations; round++) {
        for (var j = 0; j < 8; j++) w[j] = u[j];
        w[8] = 0x80000000; w[9] = w[10] = w[11] = w[12] = w[13] = w[14] = 0; w[15] = 768;
        var inner = compress(pads[0], w);
        for (j = 0; j < 8; j++) w[j] = inner[j];
        w[8] = 0x80000000; w[9] = w[10] = w[11] = w[12] = w[13] = w[14] = 0; w[15] = 768;
        u = compress(pads[1], w);
        for (j = 0; j < 8; j++) t[j] = (t[j] ^ u[j]) >>> 0;
      }
      out.push(wordsToBytes(t));
    }
    var joined = new Uint8Array(out.length * 32);
    out.forEach(function (part, i) { joined.set(part, 32 * i); });
    return toHex(joined.slice(0, bits / 8));
  }

  function webCrypto() {
    var subtle = window.crypto && window.crypto.subtle;
    return subtle && window.isSecureContext !== false ? subtle : null;
  }

  /* Hex PBKDF2-HMAC-SHA256 of `text`: Web Crypto's deriveBits where it exists. */
  function pbkdf2Hex(text, saltHex, iterations, bits) {
    var password = utf8Bytes(text), salt = hexBytes(saltHex);
    var fallback = function () { return pbkdf2Fallback(password, salt, iterations, bits); };
    var subtle = webCrypto();
    if (!subtle) return Promise.resolve().then(fallback);
    return subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"])
      .then(function (key) {
        return subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: salt,
                                   iterations: iterations }, key, bits);
      })
      .then(function (buffer) { return toHex(new Uint8Array(buffer)); })
      .catch(fallback);
  }

  /* A typed lookup code in the hashed form: no spaces or dashes, upper case, O->0, I/L->1;
     null unless 8 Crockford base-32 characters. */
  function normaliseCode(text) {
    var code = String(text).replace(/[\s\-_.]+/g, "").toUpperCase()
      .replace(/O/g, "0").replace(/[IL]/g, "1");
    return /^[0-9A-HJKMNP-TV-Z]{8}$/.test(code) ? code : null;
  }

  function formatCode(code) { return code.slice(0, 4) + "-" + code.slice(4); }

  /* ---- Tabs: click or arrow keys select (automatic activation); Home/End jump. ---- */
  var tablist = document.getElementById("course-tabs");
  var tabs = Array.prototype.slice.call(tablist.querySelectorAll('[role="tab"]'));
  var panels = tabs.map(function (tab) {
    return document.getElementById(tab.getAttribute("aria-controls"));
  });

  function selectTab(index, moveFocus) {
    tabs.forEach(function (tab, i) {
      var selected = i === index;
      tab.setAttribute("aria-selected", selected ? "true" : "false");
      tab.tabIndex = selected ? 0 : -1;
      panels[i].hidden = !selected;
    });
    if (moveFocus) tabs[index].focus();
  }

  tabs.forEach(function (tab, i) {
    tab.addEventListener("click", function () { selectTab(i, true); });
  });
  tablist.addEventListener("keydown", function (event) {
    var current = tabs.indexOf(document.activeElement);
    if (current < 0) return;
    var target = {
      ArrowRight: (current + 1) % tabs.length,
      ArrowLeft: (current - 1 + tabs.length) % tabs.length,
      Home: 0,
      End: tabs.length - 1
    }[event.key];
    if (target === undefined) return;
    event.preventDefault();
    selectTab(target, true);
  });
  tablist.hidden = false;
  selectTab(0, false);

  /* ---- PDU search: filter rows in every course, announce how many PDUs match. ---- */
  var search = document.getElementById("pdu-search");
  var searchStatus = document.getElementById("search-status");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-search]"));
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.pdus"));

  function searchKey(text) {
    return String(text).toLowerCase().replace(/[^a-z0-9]+/g, " ").trim();
  }

  function filterPdus() {
    var query = searchKey(search.value);
    var matched = {};
    var names = [];
    rows.forEach(function (row) {
      var show = !query || row.getAttribute("data-search").indexOf(query) !== -1;
      row.hidden = !show;
      var code = row.getAttribute("data-code");
      if (show && query && !matched[code]) {
        matched[code] = true;
        names.push(row.querySelector("th").textContent + " (" + code + ")");
      }
    });
    tables.forEach(function (table) {
      table.hidden = !table.querySelector("tbody tr:not([hidden])");
    });
    if (!query) {
      searchStatus.textContent = "";
    } else if (!names.length) {
      searchStatus.textContent = "No PDU matches \u201c" + search.value.trim() +
        "\u201d. Check the spelling, or try the PDU code.";
    } else {
      var shown = names.slice(0, 5).join(", ") + (names.length > 5 ? ", \u2026" : "");
      searchStatus.textContent = names.length + (names.length === 1 ? " PDU matches" :
        " PDUs match") + " \u201c" + search.value.trim() + "\u201d: " + shown + ".";
    }
  }
  ["input", "change", "search"].forEach(function (name) {
    search.addEventListener(name, filterPdus);
  });

  /* ---- Lookup codes (staff-level designs): slow salted hashes only, never staff IDs. ---- */
  var indexElement = document.getElementById("staff-index");
  var form = document.getElementById("staff-form");
  var staffIndex = indexElement ? JSON.parse(indexElement.textContent) : null;
  var timings = { lastLookupMs: null };

  function describe(code, outcome) {
    var group = outcome[0], course = outcome[1], start = outcome[2], end = outcome[3];
    var who = "Code " + code + ": ";
    if (group === staffIndex.not_in_trial) {
      return who + "you are not part of the evaluation, so no booking window applies to you.";
    }
    if (!course) {
      return who + "you are in the " + group + " group. There is no SEEDS2 course for your " +
        "grade in this evaluation.";
    }
    var text = who + "you are in the " + group + " group for " + course + ".";
    return text + (start ? " Book your place on myLearning between " + start + " and " + end +
      "." : " No booking window has been set for your group yet.");
  }

  function show(result, found, text) {
    result.className = "result " + (found ? "result-found" : "result-missing");
    result.textContent = text;
  }

  function lookUp(event) {
    event.preventDefault();
    var result = document.getElementById("staff-result");
    var typed = document.getElementById("lookup-code").value;
    var code = normaliseCode(typed);
    if (!typed.trim()) {
      show(result, false, "Enter your lookup code first.");
      return Promise.resolve();
    }
    if (!code) {
      show(result, false, "\u201c" + typed.trim() + "\u201d is not a lookup code: a code has " +
        "8 letters and digits, like K7QX-29MD. Check the email from the evaluation team.");
      return Promise.resolve();
    }
    var button = form.querySelector("button");
    var started = Date.now();
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    return pbkdf2Hex(code, staffIndex.salt, staffIndex.iterations, staffIndex.bits)
      .then(function (digest) {
        timings.lastLookupMs = Date.now() - started;
        var position = staffIndex.hashes[digest];
        show(result, position !== undefined, position !== undefined ?
          describe(formatCode(code), staffIndex.outcomes[position]) :
          "Code " + formatCode(code) + " not found. Check it against the email from the " +
          "evaluation team and try again; if it is right, ask the evaluation team.");
      })
      .then(function () {
        button.disabled = false;
        form.removeAttribute("aria-busy");
      });
  }
  if (form && staffIndex) form.addEventListener("submit", lookUp);

  window.evalkitPage = { sha256Fallback: sha256Fallback, pbkdf2Hex: pbkdf2Hex,
                         pbkdf2Fallback: pbkdf2Fallback, hexBytes: hexBytes,
                         utf8Bytes: utf8Bytes, normaliseCode: normaliseCode, timings: timings };
}());
