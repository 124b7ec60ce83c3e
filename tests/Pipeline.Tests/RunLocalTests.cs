using System.Text.Json;
using System.Text.RegularExpressions;
using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// README command 1, the way a newcomer runs it: `git clone` into a fresh folder, `cd` there,
/// `./run-local.sh`, twice. Both runs must succeed, register for real, look the version up, start
/// the ModelCar as KServe does, and print a digest-pinned storageUri that is the packed layout's
/// manifest digest; the clone must be as clean afterwards as it was cloned. What is cloned is what
/// is committed: run state that slipped into a commit would show up here.
/// </summary>
public class RunLocalTests
{
    [Fact]
    public async Task Readme_main_job_runs_twice_from_a_fresh_clone_and_leaves_it_clean()
    {
        using var tmp = new TempDir("mc-run-local");
        var clone = tmp.Combine("clone");
        var cloned = await PeerTools.RunAsync("git", ["clone", "--quiet", RepoPaths.Root, clone]);
        Assert.True(cloned.ExitCode == 0, cloned.ToString());

        for (var round = 1; round <= 2; round++)
        {
            var run = await PeerTools.RunAsync("bash", ["-c", "cd \"$1\" && ./run-local.sh", "run-local", clone], TimeSpan.FromMinutes(30));
            Assert.True(run.ExitCode == 0, $"round {round}: {run}");
            var output = run.AllOutput;

            // first contact: the first thing printed is the first step's header, and no line of apt or
            // dpkg reaches the terminal (they go to .run-local/prerequisites.log); one line for prerequisites
            var first = run.StdErr.Split('\n').First(l => l.Trim().Length > 0);
            Assert.True(first.Contains("==> 1/8 build"), $"round {round}: the first line is not the first header: {first}");
            foreach (var dpkg in PrerequisitesTests.DpkgLines)
            {
                Assert.DoesNotContain(dpkg, output);
            }
            Assert.Single(Regex.Matches(run.StdErr, @"(?m)^prerequisites: all \d+ packages of the main-job set are installed$"));

            // a real registration and the deploy side's lookup, no dry run and no error lines
            Assert.Matches(@"registered-model-id=\d+", output);
            Assert.Matches(@"model-version-id=\d+", output);
            Assert.Matches(@"model-artifact-id=\d+", output);
            Assert.DoesNotContain("dry-run", output, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(": error:", output);
            Assert.DoesNotMatch(@"\bwarn:|\bfail:|retry \d+/\d+", output);

            // KServe's start of the ModelCar, as a random non-root UID with GID 0
            var check = Regex.Match(output, @"modelcar check: (\d+) files readable under /mnt/models as uid (\d+)");
            Assert.True(check.Success, $"round {round}: no modelcar check line\n{output}");
            Assert.True(int.Parse(check.Groups[1].Value) >= 2, check.Value);
            Assert.NotEqual("0", check.Groups[2].Value);

            // the storageUri is digest-pinned, equals the lookup result and the packed layout's manifest
            var uris = Regex.Matches(output, @"storageUri: (oci://\S+)").Select(m => m.Groups[1].Value).Distinct().ToList();
            var uri = Assert.Single(uris);
            var pinned = Regex.Match(uri, @"^oci://127\.0\.0\.1:\d+/models/tiny-model@(sha256:[0-9a-f]{64})$");
            Assert.True(pinned.Success, uri);
            Assert.Contains("→ " + uri, output);
            var tag = Regex.Match(output, @"oci:\S+/\.run-local/image:(\S+) =").Groups[1].Value;
            Assert.Equal(LayoutDigest(Path.Combine(clone, ".run-local", "image"), tag), pinned.Groups[1].Value);

            var status = await PeerTools.RunAsync("git", ["-C", clone, "status", "--porcelain", "--untracked-files=all"]);
            Assert.Equal(0, status.ExitCode);
            Assert.True(status.StdOut.Trim().Length == 0, $"round {round}: the clone is dirty after ./run-local.sh:\n{status.StdOut}");
        }
    }

    private static string LayoutDigest(string layout, string tag)
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(layout, "index.json")));
        var hits = index.RootElement.GetProperty("manifests").EnumerateArray()
            .Where(m => m.TryGetProperty("annotations", out var a)
                        && a.TryGetProperty("org.opencontainers.image.ref.name", out var n) && n.GetString() == tag)
            .Select(m => m.GetProperty("digest").GetString()!)
            .ToList();
        return Assert.Single(hits);
    }
}
