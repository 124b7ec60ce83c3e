using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// scripts/prerequisites.sh, first contact (issue 21): the main job installs only what it needs and
/// prints one line per phase, apt's and dpkg's output going to the log file the line names; a failed
/// install prints the log's tail. apt-get, dpkg-query and sudo are fakes on PATH (this machine has
/// every package already, and a test must not install any): the fake apt-get prints what dpkg prints.
/// </summary>
public class PrerequisitesTests
{
    private static readonly string Script = Path.Combine(RepoPaths.Root, "scripts", "prerequisites.sh");

    /// <summary>dpkg's and apt's own lines: none of them may reach the terminal.</summary>
    public static readonly string[] DpkgLines = ["Selecting previously unselected package", "Preparing to unpack", "Unpacking ", "Setting up ",
        "Processing triggers for", "(Reading database", "Get:", "Hit:", "Reading package lists"];

    private static async Task<ToolResult> RunWithFakes(TempDir tmp, string missing, int aptExit, params string[] args)
    {
        var bin = tmp.Combine("bin");
        Directory.CreateDirectory(bin);
        void Fake(string name, string body)
        {
            var path = Path.Combine(bin, name);
            File.WriteAllText(path, "#!/usr/bin/env bash\n" + body + "\n");
            File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        }
        // installed unless named in FAKE_MISSING
        Fake("dpkg-query", """
            pkg="${@: -1}"
            for m in $FAKE_MISSING; do [ "$m" = "$pkg" ] && { echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; }; done
            printf 'install ok installed'
            """);
        Fake("sudo", "exec \"$@\"");
        Fake("apt-get", """
            case "$1" in
              update) echo "Hit:1 http://deb.debian.org/debian bookworm InRelease"; echo "Reading package lists..."; exit 0 ;;
              install)
                echo "Reading package lists..."
                [ "$FAKE_APT_EXIT" = 0 ] || { echo "E: Unable to locate package $FAKE_MISSING" >&2; exit "$FAKE_APT_EXIT"; }
                for p in $FAKE_MISSING; do
                  echo "Get:1 http://deb.debian.org/debian bookworm/main amd64 $p amd64 1.0 [100 kB]"
                  echo "Selecting previously unselected package $p."
                  echo "(Reading database ... 12345 files and directories currently installed.)"
                  echo "Preparing to unpack .../${p}_1.0_amd64.deb ..."
                  echo "Unpacking $p (1.0) ..."
                  echo "Setting up $p (1.0) ..."
                done
                echo "Processing triggers for man-db (2.11.2-2) ..." ;;
            esac
            """);
        var log = tmp.Combine("logs", "prerequisites.log");
        var quoted = string.Join(' ', args.Select(a => $"'{a}'"));
        return await PeerTools.RunAsync("bash", ["-c",
            $"PATH='{bin}':$PATH FAKE_MISSING='{missing}' FAKE_APT_EXIT={aptExit} '{Script}' {quoted} --log '{log}'"]);
    }

    [Fact]
    public async Task Main_job_install_prints_one_line_per_phase_and_sends_dpkg_output_to_the_log()
    {
        using var tmp = new TempDir("mc-prereq");
        var run = await RunWithFakes(tmp, "umoci docker-registry", 0, "--main-job");
        Assert.True(run.ExitCode == 0, run.ToString());
        var log = tmp.Combine("logs", "prerequisites.log");
        foreach (var line in DpkgLines)
        {
            Assert.DoesNotContain(line, run.AllOutput);
        }
        var lines = run.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => Assert.StartsWith("prerequisites: ", l));
        Assert.Equal(3, lines.Length); // what is missing (and where the log is), update, install
        Assert.Contains($"2 of the 10 packages of the main-job set are missing: umoci docker-registry (apt's output: {log})", lines[0]);
        Assert.Matches(@"^prerequisites: apt-get update … done in \d+s$", lines[1]);
        Assert.Matches(@"^prerequisites: apt-get install \(2 packages and their dependencies\) … done in \d+s$", lines[2]);
        var logged = File.ReadAllText(log);
        Assert.Contains("Setting up umoci (1.0) ...", logged);
        Assert.Contains("Setting up docker-registry (1.0) ...", logged);
        Assert.Empty(run.StdOut);
    }

    [Fact]
    public async Task A_failed_install_names_the_exit_code_and_prints_the_logs_tail()
    {
        using var tmp = new TempDir("mc-prereq");
        var run = await RunWithFakes(tmp, "umoci", 100, "--main-job");
        Assert.Equal(100, run.ExitCode);
        var log = tmp.Combine("logs", "prerequisites.log");
        Assert.Contains($"prerequisites: apt-get install (1 packages and their dependencies) … FAILED (exit 100) — last lines of {log}:", run.StdErr);
        Assert.Contains("    E: Unable to locate package umoci", run.StdErr);
    }

    [Fact]
    public async Task Nothing_missing_is_one_line_and_no_log()
    {
        using var tmp = new TempDir("mc-prereq");
        var run = await RunWithFakes(tmp, "", 0, "--main-job");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("prerequisites: all 10 packages of the main-job set are installed", run.StdErr.Trim());
        Assert.False(File.Exists(tmp.Combine("logs", "prerequisites.log")));
    }

    /// <summary>The main job's set leaves out the test and benchmark toolchain; the full set (test.sh) keeps all of it.</summary>
    [Fact]
    public async Task Main_job_set_is_what_run_local_needs_and_test_sh_installs_everything()
    {
        var main = (await PeerTools.RunAsync(Script, ["--main-job", "--list"])).StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var all = (await PeerTools.RunAsync(Script, ["--list"])).StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Subset(all.ToHashSet(), main.ToHashSet());
        foreach (var notNeeded in new[] { "buildah", "aria2", "skopeo", "qemu-user-static", "lld", "binutils-aarch64-linux-gnu", "libc6-dev-arm64-cross", "apache2-utils" })
        {
            Assert.DoesNotContain(notNeeded, main);
        }
        foreach (var needed in new[] { "clang", "zlib1g-dev", "umoci", "busybox-static", "docker-registry", "podman", "python3", "curl" })
        {
            Assert.Contains(needed, main);
        }
        foreach (var peer in new[] { "buildah", "aria2", "skopeo" })
        {
            Assert.Contains(peer, all);
        }
        Assert.Contains("scripts/prerequisites.sh --main-job --log", File.ReadAllText(Path.Combine(RepoPaths.Root, "run-local.sh")));
        Assert.Matches(@"(?m)^scripts/prerequisites\.sh$", File.ReadAllText(Path.Combine(RepoPaths.Root, "test.sh")));
    }
}
