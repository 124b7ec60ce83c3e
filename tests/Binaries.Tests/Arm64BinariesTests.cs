using System.Buffers.Binary;
using System.Text.RegularExpressions;
using ModelCar.TestSupport;

namespace ModelCar.Binaries.Tests;

/// <summary>
/// The linux-arm64 Native-AOT binaries (cross-published by `./build.sh out/bin-arm64 linux-arm64`)
/// are real aarch64 programs that run: checked statically (ELF machine, interpreter, libraries,
/// glibc floor, size) and by running them under qemu-user-static, where oci-pack must produce the
/// same image digest as the x86_64 binary for the same model.
/// </summary>
public class Arm64BinariesTests
{
    private const ushort ElfTypeDyn = 3;      // ET_DYN: a position-independent executable
    private const ushort ElfMachineAarch64 = 183;
    private const long MaxBinaryBytes = 20L << 20;
    private static readonly Version UbiGlibc = new(2, 34);

    public static TheoryData<string> Tools => PublishedBinariesTests.Tools;

    private static string Arm64(string tool)
    {
        var path = Path.Combine(RepoPaths.Arm64BinDir, tool);
        Assert.True(File.Exists(path), $"{path} is missing: run ./build.sh out/bin-arm64 linux-arm64 (./test.sh does)");
        return path;
    }

    [Theory]
    [MemberData(nameof(Tools))]
    public async Task Arm64_binary_is_an_aarch64_pie_on_glibc_2_34_within_20_MB(string tool)
    {
        var path = Arm64(tool);
        var header = new byte[20];
        await using (var f = File.OpenRead(path))
        {
            await f.ReadExactlyAsync(header);
        }
        Assert.Equal([0x7f, (byte)'E', (byte)'L', (byte)'F', 2 /* 64-bit */, 1 /* little-endian */], header[..6]);
        Assert.Equal(ElfTypeDyn, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(16)));
        Assert.Equal(ElfMachineAarch64, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(18)));

        var program = await PeerTools.RunAsync("readelf", ["-l", "-d", "-W", path]);
        Assert.True(program.ExitCode == 0, program.ToString());
        Assert.Contains("[Requesting program interpreter: /lib/ld-linux-aarch64.so.1]", program.StdOut);
        // glibc only; OpenSSL is loaded at run time (dlopen), zlib and brotli are linked in
        var needed = Regex.Matches(program.StdOut, @"\(NEEDED\)\s+Shared library: \[([^\]]+)\]").Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(needed);
        Assert.All(needed, lib => Assert.Contains(lib, new[] { "libc.so.6", "libm.so.6", "ld-linux-aarch64.so.1" }));

        var symbols = await PeerTools.RunAsync("objdump", ["-T", path]);
        Assert.True(symbols.ExitCode == 0, symbols.ToString());
        var glibc = Regex.Matches(symbols.StdOut, @"GLIBC_(\d+\.\d+(?:\.\d+)?)").Select(m => Version.Parse(m.Groups[1].Value)).ToList();
        Assert.NotEmpty(glibc);
        Assert.True(glibc.Max() <= UbiGlibc, $"{tool} (arm64) needs GLIBC_{glibc.Max()}, UBI 9 has {UbiGlibc}");

        Assert.InRange(new FileInfo(path).Length, 1, MaxBinaryBytes);
        Assert.InRange(new FileInfo(ToolRunner.PathOf(tool)).Length, 1, MaxBinaryBytes);
    }

    [Theory]
    [MemberData(nameof(Tools))]
    public async Task Arm64_binary_runs_under_qemu_and_reports_the_same_version(string tool)
    {
        var arm = await PeerTools.RunAsync("qemu-aarch64-static", [Arm64(tool), "--version"], TimeSpan.FromMinutes(2));
        Assert.True(arm.ExitCode == 0, arm.ToString());
        var native = await ToolRunner.RunAsync(tool, "--version");
        Assert.Equal(native.StdOut.Trim(), arm.StdOut.Trim());
    }

    [Fact]
    public async Task Arm64_oci_pack_under_qemu_packs_the_same_image_as_the_x64_binary()
    {
        using var tmp = new TempDir("mc-arm64");
        tmp.WriteFile("model/config.json", "{\"model_type\":\"mistral\"}");
        tmp.WriteFile("model/tokenizer/tokenizer.json", "{\"v\":1}");
        tmp.WriteFile("model/model.safetensors", TempDir.RandomBytes(3 << 20, 7));
        var common = new[] { "--model", tmp.Combine("model"), "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M" };

        var arm = await PeerTools.RunAsync("qemu-aarch64-static",
            [Arm64("oci-pack"), .. common, "--output", $"oci:{tmp.Combine("arm")}:t"], TimeSpan.FromMinutes(3));
        Assert.True(arm.ExitCode == 0, arm.ToString());
        var x64 = await ToolRunner.RunAsync("oci-pack", [.. common, "--output", $"oci:{tmp.Combine("x64")}:t"]);
        Assert.True(x64.ExitCode == 0, x64.ToString());

        Assert.Matches("^sha256:[0-9a-f]{64}$", arm.StdOut.Trim());
        Assert.Equal(x64.StdOut.Trim(), arm.StdOut.Trim());
        var skopeo = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", $"oci:{tmp.Combine("arm")}:t"]);
        Assert.True(skopeo.ExitCode == 0, skopeo.ToString());
    }
}
