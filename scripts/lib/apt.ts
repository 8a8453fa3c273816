// Debian's packages for what the test command needs outside npm (pgTAP, PostgreSQL's client
// tools): installed with apt-get when this process is root, fetched without installing otherwise.

async function run(command: string, args: string[], cwd?: string) {
  const out = await new Deno.Command(command, {
    args,
    cwd,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { success: out.success, output: text.decode(out.stdout) + text.decode(out.stderr) };
}

/** A Debian-like system with apt-get. */
export function hasApt(): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    return Deno.statSync("/usr/bin/apt-get").isFile;
  } catch {
    return false;
  }
}

export const isRoot = (): boolean => Deno.uid() === 0;

/** Whether apt knows a version of the package (it may not before the first `apt-get update`). */
async function known(pkg: string): Promise<boolean> {
  const { output } = await run("apt-cache", ["policy", pkg]);
  return /Candidate: (?!\(none\))\S/.test(output);
}

/** As root: `apt-get update` when apt does not know one of the packages yet. */
async function updateIfUnknown(packages: string[]): Promise<void> {
  for (const pkg of packages) {
    if (await known(pkg)) continue;
    if (!isRoot()) return;
    const update = await run("apt-get", ["update", "-qq"]);
    if (!update.success) throw new Error(`apt-get update failed: ${update.output.trim()}`);
    return;
  }
}

/** As root: installs the packages (apt-get install -y). */
export async function aptInstall(packages: string[]): Promise<void> {
  await updateIfUnknown(packages);
  const install = await run("apt-get", [
    "install",
    "-y",
    "-qq",
    "--no-install-recommends",
    ...packages,
  ]);
  if (!install.success) {
    throw new Error(`apt-get install ${packages.join(" ")} failed: ${install.output.trim()}`);
  }
}

/**
 * Unpacks a package's files into `dir`/root without installing it (and so without its
 * dependencies): `apt-get download` and `dpkg-deb -x`, which need no root once apt knows the
 * package. False when apt cannot get the package.
 */
export async function aptUnpack(pkg: string, dir: string): Promise<boolean> {
  await updateIfUnknown([pkg]);
  if (!(await known(pkg))) return false;
  // apt downloads as the user _apt where it can
  await Deno.chmod(dir, 0o755);
  const download = await run("apt-get", ["download", "-qq", pkg], dir);
  const deb = [...Deno.readDirSync(dir)].find((entry) => entry.name.endsWith(".deb"));
  if (!download.success || !deb) {
    throw new Error(`apt-get download ${pkg} failed: ${download.output.trim()}`);
  }
  const unpack = await run("dpkg-deb", ["-x", `${dir}/${deb.name}`, `${dir}/root`]);
  if (!unpack.success) throw new Error(`dpkg-deb -x ${deb.name} failed: ${unpack.output.trim()}`);
  return true;
}
