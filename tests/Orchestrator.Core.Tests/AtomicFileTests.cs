using Orchestrator.Core.IO;

namespace Orchestrator.Core.Tests;

public sealed class AtomicFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("atomic-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Writes_the_whole_content_and_leaves_no_temp_file()
    {
        var path = Path.Combine(_folder, "a.bin");
        AtomicFile.WriteAllBytes(path, [1, 2, 3]);
        AtomicFile.WriteAllBytes(path, [4, 5]);
        Assert.Equal([4, 5], File.ReadAllBytes(path));
        Assert.Equal(["a.bin"], Directory.GetFiles(_folder).Select(Path.GetFileName));
    }

    [Fact]
    public void A_writer_that_fails_keeps_the_old_content_and_removes_its_temp_file()
    {
        var path = Path.Combine(_folder, "a.bin");
        AtomicFile.WriteAllBytes(path, [1, 2, 3]);
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[100]);
            throw new InvalidOperationException("disk on fire");
        }));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(_folder));
    }

    [Fact]
    public void Leftover_temp_files_from_a_crash_are_removed()
    {
        File.WriteAllBytes(Path.Combine(_folder, ".w.safetensors.123.abc" + AtomicFile.TempSuffix), [9]);
        File.WriteAllBytes(Path.Combine(_folder, "keep.safetensors"), [9]);
        Assert.Equal(1, AtomicFile.RemoveLeftovers(_folder));
        Assert.Equal(["keep.safetensors"], Directory.GetFiles(_folder).Select(Path.GetFileName));
    }
}
