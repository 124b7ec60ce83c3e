using System.Diagnostics;

namespace ModelCar.TestSupport;

/// <summary>
/// Runs a published tool the way OpenShift's restricted-v2 does: a random UID with no passwd entry,
/// GID 0, no supplementary groups, HOME unset, and a working directory it cannot write (setpriv;
/// the tests run as root). The directories the tool may write are made group-0 writable; afterwards
/// <see cref="AssertNothingWritten"/> checks that the working directory is still empty.
/// </summary>
public sealed class ArbitraryUid : IDisposable
{
    private readonly TempDir _cwd = new("mc-cwd");

    public ArbitraryUid()
    {
        Uid = 1_000_000_000 + Random.Shared.Next(1, 99_999);
        File.SetUnixFileMode(_cwd.Path, (UnixFileMode)0b111_101_101); // root's 0755: not writable for the UID
    }

    public int Uid { get; }

    public string WorkingDirectory => _cwd.Path;

    /// <summary>Lets the UID (through GID 0) traverse <paramref name="dir"/>'s parents and write in it, as a pod's fsGroup-less volume would be.</summary>
    public static void AllowWrite(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var d in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Prepend(dir))
        {
            File.SetUnixFileMode(d, (UnixFileMode)0b111_111_101);
        }
        foreach (var f in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            File.SetUnixFileMode(f, File.GetUnixFileMode(f) | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        }
        for (var parent = Path.GetDirectoryName(dir); parent is not null && parent != "/"; parent = Path.GetDirectoryName(parent))
        {
            var mode = File.GetUnixFileMode(parent);
            if ((mode & UnixFileMode.OtherExecute) == 0)
            {
                File.SetUnixFileMode(parent, mode | UnixFileMode.OtherExecute | UnixFileMode.GroupExecute);
            }
        }
    }

    /// <summary>Lets the UID read <paramref name="path"/> (a file or a tree) and traverse to it.</summary>
    public static void AllowRead(string path)
    {
        if (Directory.Exists(path))
        {
            foreach (var d in Directory.EnumerateDirectories(path, "*", SearchOption.AllDirectories).Prepend(path))
            {
                File.SetUnixFileMode(d, File.GetUnixFileMode(d) | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
            }
            foreach (var f in Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories))
            {
                File.SetUnixFileMode(f, File.GetUnixFileMode(f) | UnixFileMode.GroupRead);
            }
        }
        else
        {
            File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.GroupRead);
        }
        for (var parent = Path.GetDirectoryName(path); parent is not null && parent != "/"; parent = Path.GetDirectoryName(parent))
        {
            var mode = File.GetUnixFileMode(parent);
            if ((mode & UnixFileMode.OtherExecute) == 0)
            {
                File.SetUnixFileMode(parent, mode | UnixFileMode.OtherExecute | UnixFileMode.GroupExecute);
            }
        }
    }

    public Task<ToolResult> RunAsync(string tool, IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var setpriv = PeerTools.Which("setpriv") ?? throw new FileNotFoundException("setpriv (util-linux) is not installed");
        var psi = new ProcessStartInfo(setpriv)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = _cwd.Path,
        };
        foreach (var a in new[] { $"--reuid={Uid}", "--regid=0", "--clear-groups", ToolRunner.PathOf(tool) }.Concat(args))
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment.Remove("HOME");
        psi.Environment.Remove("XDG_RUNTIME_DIR");
        psi.Environment.Remove("XDG_CONFIG_HOME");
        psi.Environment.Remove("DOCKER_CONFIG");
        psi.Environment.Remove("REGISTRY_AUTH_FILE");
        ToolRunner.ApplyEnvironment(psi, env);
        return ToolRunner.RunProcessAsync(psi, tool, timeout ?? TimeSpan.FromMinutes(3));
    }

    /// <summary>The working directory is still empty: the tool wrote only where it was told.</summary>
    public void AssertNothingWritten()
    {
        var entries = Directory.GetFileSystemEntries(_cwd.Path, "*", SearchOption.AllDirectories);
        if (entries.Length > 0)
        {
            throw new Xunit.Sdk.XunitException($"the tool wrote into its working directory: {string.Join(", ", entries)}");
        }
    }

    public void Dispose() => _cwd.Dispose();
}
