using ModelCar.Common.Cli;
using ModelCar.Common.IO;
using ModelCar.TestSupport;

namespace ModelCar.Common.Tests;

public class FilesAndResultsTests
{
    [Fact]
    public void Results_are_one_file_each_without_newline_and_world_readable()
    {
        using var tmp = new TempDir();
        var dir = tmp.Combine("results", "nested");
        var results = new TektonResults(dir);
        results.Write("IMAGE_DIGEST", "sha256:abc");
        var file = Path.Combine(dir, "IMAGE_DIGEST");
        Assert.Equal("sha256:abc", File.ReadAllText(file));
        Assert.Equal(Files.FileMode644, File.GetUnixFileMode(file));
        Assert.Equal(Files.DirMode755, File.GetUnixFileMode(dir));
    }

    [Fact]
    public void Result_names_cannot_escape_the_directory()
    {
        using var tmp = new TempDir();
        Assert.Throws<ArgumentException>(() => new TektonResults(tmp.Path).Write("../x", "v"));
    }

    [Fact]
    public void No_results_dir_writes_nothing()
    {
        new TektonResults(null).Write("X", "y"); // must not throw
    }

    [Theory]
    [InlineData("1048576", 1048576L)]
    [InlineData("64M", 64L << 20)]
    [InlineData("64MiB", 64L << 20)]
    [InlineData("20G", 20L << 30)]
    [InlineData("1.5k", 1536L)]
    public void Sizes_parse(string text, long expected)
    {
        Assert.True(SizeParser.TryParse(text, out long bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("12X")]
    public void Bad_sizes_are_rejected(string text) => Assert.False(SizeParser.TryParse(text, out _));
}
