namespace ModelCar.TestSupport;

/// <summary>
/// The statically linked busybox binaries the test bases are made of: Debian's busybox-static for
/// amd64 (/bin/busybox) and for arm64, which cannot be installed beside it and is unpacked by
/// scripts/prerequisites.sh (apt-get download busybox-static:arm64 + dpkg-deb -x) into
/// <see cref="Arm64Dir"/>. A missing one fails the test with what to run.
/// </summary>
public static class Busybox
{
    /// <summary>Keep in sync with ARM64_BUSYBOX_DIR in scripts/prerequisites.sh.</summary>
    public static string Arm64Dir => Environment.GetEnvironmentVariable("MODELCAR_ARM64_BUSYBOX_DIR") is { Length: > 0 } d ? d : "/usr/local/share/modelcar-tests/busybox-arm64";

    /// <summary>The busybox binary for a Go architecture name (amd64, arm64).</summary>
    public static string PathFor(string architecture)
    {
        var path = architecture switch
        {
            "amd64" => "/bin/busybox",
            "arm64" => System.IO.Path.Combine(Arm64Dir, "bin", "busybox"),
            _ => throw new ArgumentException($"no test busybox for {architecture}", nameof(architecture)),
        };
        return File.Exists(path)
            ? path
            : throw new FileNotFoundException($"{path} is missing (busybox-static for {architecture}): run scripts/prerequisites.sh");
    }
}

/// <summary>
/// Running arm64 binaries and containers on an x86-64 machine: qemu-user-static's qemu-aarch64
/// registered with binfmt_misc, flags F (the kernel opens the interpreter at registration, so it
/// also works inside containers whose root has no qemu) — the way Debian's binfmt.d file says.
/// <see cref="EnsureArm64Async"/> sets it up idempotently and throws (the test fails, never skips)
/// when it cannot.
/// </summary>
public static class QemuUser
{
    private const string BinfmtDir = "/proc/sys/fs/binfmt_misc";
    private const string Entry = BinfmtDir + "/qemu-aarch64";
    private const string DebianRule = "/usr/lib/binfmt.d/qemu-aarch64.conf";
    private static readonly SemaphoreSlim Gate = new(1, 1);

    public static async Task EnsureArm64Async()
    {
        await Gate.WaitAsync();
        try
        {
            if (!File.Exists(Path.Combine(BinfmtDir, "register")))
            {
                var mount = await PeerTools.RunAsync("mount", ["-t", "binfmt_misc", "binfmt_misc", BinfmtDir]);
                if (mount.ExitCode != 0 && !File.Exists(Path.Combine(BinfmtDir, "register")))
                {
                    throw new InvalidOperationException($"cannot mount binfmt_misc at {BinfmtDir} (needed to run arm64 code under qemu-user-static): {mount}");
                }
            }
            if (!File.Exists(Entry))
            {
                if (!File.Exists(DebianRule))
                {
                    throw new FileNotFoundException($"{DebianRule} is missing: apt-get install qemu-user-static (scripts/prerequisites.sh)");
                }
                try
                {
                    await File.WriteAllTextAsync(Path.Combine(BinfmtDir, "register"), (await File.ReadAllTextAsync(DebianRule)).Trim() + "\n");
                }
                catch (IOException) when (File.Exists(Entry))
                {
                    // registered meanwhile by another process (EEXIST)
                }
            }
            var state = await File.ReadAllTextAsync(Entry);
            if (!state.StartsWith("enabled", StringComparison.Ordinal) || !System.Text.RegularExpressions.Regex.IsMatch(state, @"flags: \w*F"))
            {
                throw new InvalidOperationException($"{Entry} is not enabled with flag F (fix-binary): {state}");
            }
        }
        finally
        {
            Gate.Release();
        }
    }
}
