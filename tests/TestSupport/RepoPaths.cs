namespace ModelCar.TestSupport;

/// <summary>Locations in the repository, found from the test assembly's folder.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>The published Native-AOT binaries (./build.sh); MODELCAR_BIN_DIR overrides.</summary>
    public static string BinDir => Environment.GetEnvironmentVariable("MODELCAR_BIN_DIR") is { Length: > 0 } d
        ? Path.GetFullPath(d)
        : Path.Combine(Root, "out", "bin");

    /// <summary>The linux-arm64 binaries (`./build.sh out/bin-arm64 linux-arm64`; ./test.sh does it on x86_64).</summary>
    public static string Arm64BinDir => Environment.GetEnvironmentVariable("MODELCAR_ARM64_BIN_DIR") is { Length: > 0 } d
        ? Path.GetFullPath(d)
        : Path.Combine(Root, "out", "bin-arm64");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tools.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("Tools.sln not found above " + AppContext.BaseDirectory);
    }
}
