// What publish.mjs and subscribe.mjs share: stdout kept for their JSON
// lines, errors reported on it, stdin read a JSON object a line, and the
// session dialed as the setup line says. Imported first by both: it loads
// the shim before @moq/lite.
import "./shim.mjs";
import * as readline from "node:readline";
import * as Moq from "@moq/lite";
import Qmux from "@moq/qmux";
import WebTransportWs from "@moq/web-transport-ws";

// @moq/lite logs each stream at debug level, on stdout: stdout is ours.
for (const level of ["log", "debug", "info"]) console[level] = (...args) => console.error(...args);

// send writes ev as one line; the promise resolves once it is flushed
// (stdout is a pipe, written asynchronously: exiting earlier cuts it off).
export function send(ev) {
	return new Promise((resolve) => process.stdout.write(`${JSON.stringify(ev)}\n`, resolve));
}

async function fail(err) {
	await send({ ev: "error", message: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) });
	process.exit(1);
}
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// nextLine returns the next line of stdin, parsed.
export async function nextLine() {
	const { value, done } = await lines.next();
	if (done) throw new Error("stdin ended");
	return JSON.parse(value);
}

// connect dials setup.url with setup.framing and setup.protocol.
export async function connect(setup) {
	const url = new URL(setup.url);
	const protocols = setup.protocol ? [setup.protocol] : [];
	if (setup.framing === "qmux" && protocols.length === 0) return Moq.Connection.connect(url);
	const transport =
		setup.framing === "qmux" ? new Qmux(url, { protocols }) : new WebTransportWs(url, { protocols });
	await transport.ready;
	return Moq.Connection.connect(url, { transport });
}
