using System.Diagnostics;
using System.Text;
using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>podman on the test machine (the engine scripts/container-engine.sh configures).</summary>
internal static class Podman
{
    public static Task<ToolResult> RunAsync(IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(PeerTools.Which("podman") ?? throw new FileNotFoundException("podman is not installed (apt-get install podman runc)"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = RepoPaths.Root,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return ToolRunner.RunProcessAsync(psi, $"podman {string.Join(' ', args)}", timeout ?? TimeSpan.FromMinutes(5));
    }

    public static Task<ToolResult> RunAsync(params string[] args) => RunAsync((IEnumerable<string>)args);
}

/// <summary>The builder image from images/Containerfile, built once per test run by scripts/build-image.sh.</summary>
internal static class BuilderImage
{
    public const string Tag = "localhost/modelcar-tools:test";
    public const string TestBase = "localhost/modelcar-runtime-base:ubi-minimal-files";

    private static readonly Lazy<Task<string>> Built = new(async () =>
    {
        // the stand-in base is rebuilt too, so a change to scripts/build-image.sh is what is tested
        await Podman.RunAsync("rmi", "-f", TestBase);
        var psi = new ProcessStartInfo(Path.Combine(RepoPaths.Root, "scripts", "build-image.sh")) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepoPaths.Root };
        psi.ArgumentList.Add(Tag);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        var result = new ToolResult(p.ExitCode, await o, await e);
        return result.ExitCode == 0 ? Tag : throw new InvalidOperationException("scripts/build-image.sh failed: " + result);
    });

    public static Task<string> EnsureBuiltAsync() => Built.Value;

    /// <summary>A UID from the kind of range OpenShift assigns a namespace (openshift.io/sa.scc.uid-range).</summary>
    public static int RandomUid() => Random.Shared.Next(1_000_600_000, 1_000_999_999);
}

/// <summary>
/// Runs each step the way a pod under restricted-v2 would: in podman with the step's image, command,
/// args and env; as a random UID with GID 0 plus the namespace's fsGroup as supplemental group; a
/// read-only root file system with only a tmpfs /tmp; all capabilities dropped, no privilege
/// escalation; the Task's workspaces at their mount paths (PVCs as host folders owned by the
/// fsGroup with g+rwxs, secrets as read-only folders holding the keys the cluster creates);
/// /var/run/secrets/kubernetes.io/serviceaccount from test files; /tekton/results an empty
/// folder per TaskRun whose files become the results. Host networking, so 127.0.0.1 servers are
/// reachable.
/// </summary>
internal sealed class PodmanStepExecutor(string root, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> secrets, string serviceAccountDir) : IStepExecutor
{
    private int _counter;

    public int Uid { get; init; } = BuilderImage.RandomUid();

    public int FsGroup { get; init; } = BuilderImage.RandomUid();

    public string RunId { get; set; } = "run1";

    public List<string> CommandLines { get; } = [];

    /// <summary>Called before each TaskRun attempt (task name, 0-based attempt): for faults between retries.</summary>
    public Action<string, int>? BeforeAttempt { get; set; }

    /// <summary>Host folder of a PVC: a per-run folder for a volumeClaimTemplate, a fixed one for a claim name.</summary>
    public string PvcDir(WorkspaceBinding b) => b.Kind switch
    {
        "volumeClaimTemplate" => Path.Combine(root, "pvc", $"{RunId}-{b.Name}"),
        "persistentVolumeClaim" => Path.Combine(root, "claims", b.Claim!),
        _ => throw new InvalidOperationException(b.Kind),
    };

    /// <summary>
    /// `podman run` as a restricted-v2 container: UID from the namespace range, GID 0 (plus the
    /// fsGroup), read-only root with only a tmpfs /tmp, all capabilities dropped, no new privileges,
    /// host network (the test servers listen on 127.0.0.1), no pulls.
    /// </summary>
    public static List<string> RestrictedRunArgs(int uid, int? fsGroup = null)
    {
        var args = new List<string>
        {
            "run", "--rm", "--pull=never", "--network=host",
            $"--user={uid}:0",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,mode=1777,size=256m",
            "--cap-drop=all", "--security-opt=no-new-privileges",
        };
        if (fsGroup is { } g)
        {
            args.Add($"--group-add={g}");
        }
        return args;
    }

    public async Task<StepOutcome> RunAsync(ResolvedStep step, int attempt, CancellationToken ct)
    {
        BeforeAttempt?.Invoke(step.TaskRun, attempt);
        var n = Interlocked.Increment(ref _counter);
        var results = Path.Combine(root, "results", $"{RunId}-{step.TaskRun}-{attempt}-{n}");
        Directory.CreateDirectory(results);
        File.SetUnixFileMode(results, (UnixFileMode)0b111_111_111); // an emptyDir
        var args = RestrictedRunArgs(Uid, FsGroup);
        args.AddRange(["-v", $"{results}:/tekton/results", "-v", $"{serviceAccountDir}:/var/run/secrets/kubernetes.io/serviceaccount:ro"]);
        foreach (var (binding, decl) in step.Mounts)
        {
            string host;
            bool readOnly = decl.ReadOnly;
            switch (binding.Kind)
            {
                case "secret":
                    host = SecretDir(binding.SecretName!);
                    readOnly = true;
                    break;
                case "emptyDir":
                    host = Path.Combine(root, "emptydir", $"{RunId}-{step.TaskRun}-{n}-{binding.Name}");
                    Directory.CreateDirectory(host);
                    File.SetUnixFileMode(host, (UnixFileMode)0b111_111_111);
                    break;
                default:
                    host = PvcDir(binding);
                    EnsurePvc(host);
                    break;
            }
            args.AddRange(["-v", $"{host}:{decl.MountPath}{(readOnly ? ":ro" : "")}"]);
        }
        foreach (var (k, v) in step.Env)
        {
            args.AddRange(["-e", $"{k}={v}"]);
        }
        foreach (var se in step.SecretEnv)
        {
            if (secrets.TryGetValue(se.Secret, out var keys) && keys.TryGetValue(se.Key, out var value))
            {
                args.AddRange(["-e", $"{se.Name}={value}"]);
            }
            else if (!se.Optional)
            {
                return new StepOutcome(1, $"CreateContainerConfigError: secret {se.Secret} key {se.Key} not found", new Dictionary<string, string>());
            }
        }
        Assert.NotEmpty(step.Command);
        args.AddRange(["--entrypoint", step.Command.Count == 1 ? step.Command[0] : System.Text.Json.JsonSerializer.Serialize(step.Command)]);
        args.Add(step.Image);
        args.AddRange(step.Args);
        lock (CommandLines)
        {
            CommandLines.Add(string.Join(' ', args));
        }
        var r = await Podman.RunAsync(args, TimeSpan.FromMinutes(5));
        var written = new Dictionary<string, string>();
        foreach (var f in Directory.GetFiles(results))
        {
            written[Path.GetFileName(f)] = File.ReadAllText(f);
        }
        var log = new StringBuilder($"[{step.TaskRun}/{step.Step} attempt {attempt + 1}] exit {r.ExitCode}\n{r.StdOut}{r.StdErr}");
        return new StepOutcome(r.ExitCode, log.ToString(), written);
    }

    private void EnsurePvc(string dir)
    {
        if (Directory.Exists(dir))
        {
            return;
        }
        Directory.CreateDirectory(dir);
        // what the kubelet does with fsGroup: the volume's group is the fsGroup, mode g+rwxs
        var chown = PeerTools.RunAsync("chown", [$"0:{FsGroup}", dir]).GetAwaiter().GetResult();
        Assert.True(chown.ExitCode == 0, chown.ToString());
        File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("2775", 8));
    }

    private string SecretDir(string name)
    {
        var dir = Path.Combine(root, "secrets", name);
        if (!Directory.Exists(dir))
        {
            var keys = secrets.TryGetValue(name, out var k) ? k : throw new InvalidOperationException($"secret {name} does not exist (the pod would not start)");
            Directory.CreateDirectory(dir);
            foreach (var (key, value) in keys)
            {
                var file = Path.Combine(dir, key);
                File.WriteAllText(file, value);
                File.SetUnixFileMode(file, (UnixFileMode)0b110_100_100); // defaultMode 0644
            }
        }
        return dir;
    }
}
