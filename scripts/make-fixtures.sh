#!/usr/bin/env bash
# Regenerates fixtures/library/: a tiny music library of real, tagged media files used by the
# tag-extractor unit tests (src/scan/tags.rs) and the integration tests.
#
# Usage: scripts/make-fixtures.sh            (from anywhere; writes into the repository)
#
# Tools: ffmpeg encodes every file (bit-exact mode, fixed 1 s signals, no encoder tags), and
# Python's mutagen (Debian: python3-mutagen) writes the tags, so the output is the same on every
# run with the same tool versions. Run as root, the script apt-get installs what is missing.
# fixtures/README.md describes every file; it is not generated.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/fixtures/library"
py=/usr/bin/python3

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
{ [ -x "$py" ] && "$py" -c 'import mutagen' >/dev/null 2>&1; } || need+=(python3 python3-mutagen)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
    else
        echo "make-fixtures: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

export LC_ALL=C.UTF-8 TZ=UTC
rm -rf "$out"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ffmpeg with no banner, no stdin, bit-exact output and no metadata copied from the input.
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
BITEXACT=(-fflags +bitexact -flags:a +bitexact -flags:v +bitexact -map_metadata -1)
# A 1 s sine tone at sample rate $1.
sine() { echo "sine=frequency=440:sample_rate=$1:duration=1"; }

mkdir -p "$out/The Testers/Ninety Nine" "$out/Various Artists/Shared Stage" \
    "$out/Björk/Homogenic" "$out/日本語/テスト アルバム" "$out/Opus Ensemble/Low Bitrate" \
    "$out/Wave Makers/Raw" "$out/video" "$out/images" "$out/broken" "$out/playlists"

# Images: the cover (also embedded below) and a photo.
ff -f lavfi -i "color=c=0x3366cc:size=16x16" -frames:v 1 "${BITEXACT[@]}" "$out/images/cover.png"
ff -f lavfi -i "testsrc=size=32x32:rate=1" -frames:v 1 -c:v mjpeg -pix_fmt yuvj420p -q:v 8 \
    "${BITEXACT[@]}" "$out/images/photo.jpg"

# Audio, untagged: the mp3 muxer writes neither ID3v2 nor ID3v1 here; mutagen adds the tags.
mp3() { ff -f lavfi -i "$(sine 22050)" -ac 1 -c:a libmp3lame -b:a 32k -id3v2_version 0 \
    -write_id3v1 0 "${BITEXACT[@]}" "$1"; }
mp3 "$out/The Testers/Ninety Nine/05 Version Three.mp3"
mp3 "$out/The Testers/Ninety Nine/07 Old School.mp3"
mp3 "$out/Various Artists/Shared Stage/03 Duet.mp3"
ff -f lavfi -i "$(sine 8000)" -ac 1 -c:a flac -sample_fmt s16 "${BITEXACT[@]}" \
    "$out/Björk/Homogenic/01 Jóga.flac"
ff -f lavfi -i "$(sine 22050)" -ac 1 -c:a libvorbis -q:a 0 "${BITEXACT[@]}" \
    "$out/日本語/テスト アルバム/02 日本語の歌.ogg"
ff -f lavfi -i "$(sine 48000)" -ac 1 -c:a libopus -b:a 16k "${BITEXACT[@]}" \
    "$out/Opus Ensemble/Low Bitrate/04 Whisper.opus"
ff -f lavfi -i "$(sine 22050)" -ac 1 -c:a aac -b:a 32k "${BITEXACT[@]}" \
    "$out/Various Artists/Shared Stage/04 Together.m4a"
ff -f lavfi -i "$(sine 8000)" -ac 1 -c:a pcm_s16le "${BITEXACT[@]}" \
    "$out/Wave Makers/Raw/01 Plain Wave.wav"

# Video: 1 s of 64x64 test pattern at 10 fps with a mono AAC track.
ff -f lavfi -i "testsrc=size=64x64:rate=10:duration=1" -f lavfi -i "$(sine 8000)" \
    -c:v mpeg4 -q:v 20 -pix_fmt yuv420p -c:a aac -b:a 16k -ac 1 -shortest \
    "${BITEXACT[@]}" "$out/video/Tiny Clip.mp4"

# Tags, and the broken files (deterministic bytes).
"$py" - "$out" <<'PY'
import base64, os, random, struct, sys
from mutagen.flac import FLAC, Picture
from mutagen.id3 import (ID3, APIC, TALB, TCMP, TCON, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK, TXXX,
                         TYER, UFID)
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

out = sys.argv[1]
p = lambda *parts: os.path.join(out, *parts)
cover = open(p("images", "cover.png"), "rb").read()
MB_TRACK = "1c0f9b3e-0000-4000-8000-000000000001"
MB_ALBUM = "1c0f9b3e-0000-4000-8000-0000000000a1"

# MP3, ID3v2.3: single artist, "5/9", disc "1/2", TYER, numeric genre "(17)" (= Rock).
f = p("The Testers", "Ninety Nine", "05 Version Three.mp3")
t = ID3()
t.add(TIT2(encoding=1, text="Version Three"))
t.add(TPE1(encoding=1, text="The Testers"))
t.add(TALB(encoding=1, text="Ninety Nine"))
t.add(TRCK(encoding=1, text="5/9"))
t.add(TPOS(encoding=1, text="1/2"))
t.add(TYER(encoding=1, text="1999"))
t.add(TCON(encoding=1, text="(17)"))
t.save(f, v2_version=3, v1=0, padding=lambda info: 0)

# MP3, ID3v1 only (written by hand: 128 bytes at the end, ID3v1.1 track byte, genre 17).
f = p("The Testers", "Ninety Nine", "07 Old School.mp3")
def fld(s, n):
    return s.encode("latin-1")[:n].ljust(n, b"\0")
v1 = (b"TAG" + fld("Old School", 30) + fld("The Testers", 30) + fld("Ninety Nine", 30)
      + b"1985" + fld("", 28) + b"\0" + bytes([7]) + bytes([17]))
assert len(v1) == 128
with open(f, "ab") as fh:
    fh.write(v1)

# MP3, ID3v2.4: two artists (NUL-separated TPE1), "3/12", compilation, cover, MusicBrainz ids.
f = p("Various Artists", "Shared Stage", "03 Duet.mp3")
t = ID3()
t.add(TIT2(encoding=3, text="Duet"))
t.add(TPE1(encoding=3, text=["Alice Example", "Bob Example"]))
t.add(TPE2(encoding=3, text="Various Artists"))
t.add(TALB(encoding=3, text="Shared Stage"))
t.add(TRCK(encoding=3, text="3/12"))
t.add(TPOS(encoding=3, text="1/1"))
t.add(TDRC(encoding=3, text="2003-04-05"))
t.add(TCON(encoding=3, text=["Pop", "Jazz"]))
t.add(TCMP(encoding=3, text="1"))
t.add(UFID(owner="http://musicbrainz.org", data=MB_TRACK.encode()))
t.add(TXXX(encoding=3, desc="MusicBrainz Album Id", text=MB_ALBUM))
t.add(APIC(encoding=3, mime="image/png", type=3, desc="", data=cover))
t.save(f, v2_version=4, v1=0, padding=lambda info: 0)

# FLAC: non-ASCII, TRACKNUMBER/TRACKTOTAL, cover picture block, MusicBrainz ids.
f = FLAC(p("Björk", "Homogenic", "01 Jóga.flac"))
f.clear()
f["TITLE"] = "Jóga"
f["ARTIST"] = "Björk"
f["ALBUMARTIST"] = "Björk"
f["ALBUM"] = "Homogenic"
f["DATE"] = "1997-09-22"
f["GENRE"] = "Electronic"
f["TRACKNUMBER"] = "1"
f["TRACKTOTAL"] = "10"
f["DISCNUMBER"] = "1"
f["DISCTOTAL"] = "1"
f["MUSICBRAINZ_TRACKID"] = MB_TRACK
f["MUSICBRAINZ_ALBUMID"] = MB_ALBUM
pic = Picture()
pic.type, pic.mime, pic.width, pic.height, pic.depth, pic.data = 3, "image/png", 16, 16, 24, cover
f.clear_pictures()
f.add_picture(pic)
f.save(padding=lambda info: 0)

# Ogg Vorbis: Japanese, two ARTIST fields, TRACKNUMBER "3/12", COMPILATION=1.
f = OggVorbis(p("日本語", "テスト アルバム", "02 日本語の歌.ogg"))
f.clear()
f["TITLE"] = "日本語の歌"
f["ARTIST"] = ["山田太郎", "Guest Singer"]
f["ALBUM"] = "テスト アルバム"
f["ALBUMARTIST"] = "日本語"
f["DATE"] = "2010"
f["GENRE"] = "J-Pop"
f["TRACKNUMBER"] = "3/12"
f["DISCNUMBER"] = "2/3"
f["COMPILATION"] = "1"
f.save(padding=lambda info: 0)

# Opus: cover as METADATA_BLOCK_PICTURE.
f = OggOpus(p("Opus Ensemble", "Low Bitrate", "04 Whisper.opus"))
f.clear()
f["TITLE"] = "Whisper"
f["ARTIST"] = "Opus Ensemble"
f["ALBUM"] = "Low Bitrate"
f["DATE"] = "2021-01-01"
f["GENRE"] = "Ambient"
f["TRACKNUMBER"] = "4"
f["METADATA_BLOCK_PICTURE"] = base64.b64encode(pic.write()).decode("ascii")
f.save(padding=lambda info: 0)

# M4A (AAC): two artists, trkn 4/12, disk 1/1, cpil, covr, MusicBrainz freeform atoms.
f = MP4(p("Various Artists", "Shared Stage", "04 Together.m4a"))
f.clear()
f["\xa9nam"] = "Together"
f["\xa9ART"] = ["Alice Example", "Carol Example"]
f["aART"] = "Various Artists"
f["\xa9alb"] = "Shared Stage"
f["\xa9day"] = "2003"
f["\xa9gen"] = "Pop"
f["trkn"] = [(4, 12)]
f["disk"] = [(1, 1)]
f["cpil"] = True
f["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_PNG)]
f["----:com.apple.iTunes:MusicBrainz Track Id"] = [MB_TRACK.encode()]
f["----:com.apple.iTunes:MusicBrainz Album Id"] = [MB_ALBUM.encode()]
f.save(padding=lambda info: 0)

# WAV with an ID3v2.4 chunk.
f = WAVE(p("Wave Makers", "Raw", "01 Plain Wave.wav"))
f.add_tags()
f.tags.add(TIT2(encoding=3, text="Plain Wave"))
f.tags.add(TPE1(encoding=3, text="Wave Makers"))
f.tags.add(TALB(encoding=3, text="Raw"))
f.tags.add(TRCK(encoding=3, text="1"))
f.tags.add(TDRC(encoding=3, text="2015"))
f.save(padding=lambda info: 0)

# Video: a title.
f = MP4(p("video", "Tiny Clip.mp4"))
f["\xa9nam"] = "Tiny Clip"
f.save(padding=lambda info: 0)

# Broken 1: a FLAC cut inside its STREAMINFO block.
with open(p("Björk", "Homogenic", "01 Jóga.flac"), "rb") as fh:
    head = fh.read(30)
with open(p("broken", "truncated.flac"), "wb") as fh:
    fh.write(head)

# Broken 2: an MP3 whose ID3v2.4 header claims a ~256 MiB tag, followed by garbage frames.
rng = random.Random(20240601)
with open(p("broken", "bad-id3-header.mp3"), "wb") as fh:
    fh.write(b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f")
    fh.write(b"TIT2\x7f\x7f\x7f\x7f\x00\x00" + bytes(rng.randrange(256) for _ in range(500)))

# Broken 3: random bytes with an audio extension.
with open(p("broken", "random-bytes.ogg"), "wb") as fh:
    fh.write(bytes(rng.randrange(256) for _ in range(2048)))

# A playlist referencing some of the files, relative to itself.
with open(p("playlists", "Mix.m3u"), "w", encoding="utf-8", newline="\n") as fh:
    fh.write("#EXTM3U\n"
             "#EXTINF:1,Björk - Jóga\n../Björk/Homogenic/01 Jóga.flac\n"
             "#EXTINF:1,山田太郎 - 日本語の歌\n../日本語/テスト アルバム/02 日本語の歌.ogg\n"
             "#EXTINF:1,Alice Example; Bob Example - Duet\n"
             "../Various Artists/Shared Stage/03 Duet.mp3\n")
PY

find "$out" -type f | LC_ALL=C sort | while IFS= read -r f; do
    printf '%8d  %s\n' "$(stat -c %s "$f")" "${f#"$repo"/}"
done
du -sh "$repo/fixtures"
