using ModelCar.Common.IO;

namespace ModelCar.Common.Tests;

/// <summary>The shared symlink walk over a map of links (what RealPath, RootFsScanner and ModelTree feed it).</summary>
public class SymlinkWalkTests
{
    private static readonly Dictionary<string, string?> Tree = new(StringComparer.Ordinal)
    {
        ["usr"] = null,
        ["usr/bin"] = null,
        ["usr/bin/sh"] = null,
        ["bin"] = "usr/bin",
        ["abs"] = "/usr/bin",
        ["up"] = "../..",
        ["loop"] = "loop",
    };

    private static bool Read(string path, out string? target) => Tree.TryGetValue(path, out target);

    [Theory]
    [InlineData("bin/sh", SymlinkScope.Posix, SymlinkWalkStatus.Resolved, "usr/bin/sh")]
    [InlineData("/bin/./sh", SymlinkScope.Posix, SymlinkWalkStatus.Resolved, "usr/bin/sh")]
    [InlineData("bin/../bin/sh", SymlinkScope.Posix, SymlinkWalkStatus.Resolved, "usr/bin/sh")]
    [InlineData("abs/sh", SymlinkScope.Posix, SymlinkWalkStatus.Resolved, "usr/bin/sh")]
    [InlineData("up/usr", SymlinkScope.Posix, SymlinkWalkStatus.Resolved, "usr")]
    [InlineData("bin/nope", SymlinkScope.Posix, SymlinkWalkStatus.Missing, "usr/bin/nope")]
    [InlineData("loop", SymlinkScope.Posix, SymlinkWalkStatus.TooManyLinks, "loop")]
    [InlineData("bin/sh", SymlinkScope.Confined, SymlinkWalkStatus.Resolved, "usr/bin/sh")]
    [InlineData("abs/sh", SymlinkScope.Confined, SymlinkWalkStatus.AbsoluteLink, "abs")]
    [InlineData("up/usr", SymlinkScope.Confined, SymlinkWalkStatus.AboveRoot, "")]
    [InlineData("..", SymlinkScope.Confined, SymlinkWalkStatus.AboveRoot, "")]
    public void Walks_like_the_kernel_within_its_scope(string path, SymlinkScope scope, SymlinkWalkStatus status, string where) =>
        Assert.Equal(new SymlinkWalkResult(status, where), SymlinkWalk.Resolve(path, Read, scope));

    [Fact]
    public void A_walk_from_a_directory_may_go_up_to_the_root_but_not_above_it_when_confined()
    {
        Assert.Equal(new SymlinkWalkResult(SymlinkWalkStatus.Resolved, "bin"), SymlinkWalk.Resolve(["usr", "bin"], "../../bin", (string _, out string? t) => { t = null; return true; }, SymlinkScope.Confined));
        Assert.Equal(SymlinkWalkStatus.AboveRoot, SymlinkWalk.Resolve(["usr"], "../..", (string _, out string? t) => { t = null; return true; }, SymlinkScope.Confined).Status);
    }
}
