#!/usr/bin/env bash
# Regenerate calls.pcap: three overlapping G.711 calls made by real SIPp
# (agent phone -> PBX), captured as a SPAN port would see them.
#
# Run as root on Debian 12:   sudo ./make-calls-pcap.sh [output.pcap]
#
# Everything happens between two throw-away network namespaces joined by a
# veth pair, using documentation addresses (RFC 5737), so no packet of the
# demo traffic can ever leave the machine or reach a real host.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/calls.pcap}"

# --- topology --------------------------------------------------------------
ns_pbx=tapline-demo-pbx
ns_phone=tapline-demo-phone
if_pbx=tl-pbx0
if_phone=tl-phone0
ip_pbx=198.51.100.10      # PBX, SIPp UAS
ip_phone=198.51.100.20    # agent phone, SIPp UAC
# Fixed locally-administered MACs: veth otherwise picks random ones, and we
# want every regeneration to look the same on the wire.
mac_pbx=02:00:00:00:00:10
mac_phone=02:00:00:00:00:20
# RTP port bases; SIPp's [auto_media_port] gives call N base + 4*(N-1).
rtp_pbx=10000
rtp_phone=16384

# Per call: caller tone (Hz), callee tone (Hz), seconds of talk.  Distinct
# tones make it obvious by ear which leg and which call a recording holds.
calls=3
caller_hz=(440 550 660)
callee_hz=(1000 1250 1500)
talk_s=(6 8 10)

[[ $EUID -eq 0 ]] || { echo "must run as root (namespaces, raw sockets)" >&2; exit 1; }

# --- tools -----------------------------------------------------------------
need=()
for pkg in sip-tester tcpdump tshark iproute2 sox ethtool python3; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update
    # noninteractive: tshark otherwise asks about non-root capture
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns_pbx" 2>/dev/null || true
    ip netns del "$ns_phone" 2>/dev/null || true
    if ((rc != 0)); then
        echo "FAILED (rc=$rc); SIPp logs follow" >&2
        tail -n 40 "$work"/*.log >&2 2>/dev/null || true
    fi
    # KEEP_WORK=1 keeps the scenarios, audio and SIPp logs for debugging
    if [[ -n ${KEEP_WORK:-} ]]; then echo "work files kept in $work" >&2; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap "exit 130" INT TERM     # still cleans up, through the EXIT trap

cd "$work"

# --- source audio ----------------------------------------------------------
# SIPp's play_pcap_audio replays RTP from a pcap, rewriting only addresses
# and ports, so we build one small RTP pcap per call and direction: a
# continuous mu-law tone in 20 ms packets (160 samples, PT 0).
# -D: no dither, so the samples (and the capture) are identical every run.
for ((i = 0; i < calls; i++)); do
    n=$((i + 1))
    sox -D -n -t ul -r 8000 -c 1 "caller-$n.ul" synth "${talk_s[i]}" sine "${caller_hz[i]}" vol 0.3 fade 0.02 "${talk_s[i]}" 0.02
    sox -D -n -t ul -r 8000 -c 1 "callee-$n.ul" synth "${talk_s[i]}" sine "${callee_hz[i]}" vol 0.3 fade 0.02 "${talk_s[i]}" 0.02
done

cat > ul2rtp.py <<'EOF'
# Wrap raw mu-law audio into an Ethernet/IPv4/UDP/RTP pcap for SIPp.
# SSRC, first sequence number and first timestamp are derived from the
# file name: they look random but do not change between runs.
import hashlib, struct, sys

src, dst = sys.argv[1], sys.argv[2]
audio = open(src, "rb").read()
seed = hashlib.sha256(src.encode()).digest()
ssrc, seq0, ts0 = struct.unpack("!IHI", seed[:10])

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

# Only the UDP part matters to SIPp: it swaps in each call's real media
# addresses and ports, so the Ethernet/IP fields are mere placeholders.
PT_PCMU = 0
with open(dst, "wb") as f:
    # classic pcap header: microsecond timestamps, linktype 1 (Ethernet)
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for k, off in enumerate(range(0, len(audio) - 159, 160)):
        marker = 0x80 if k == 0 else 0     # first packet of a talkspurt
        rtp = struct.pack("!BBHII", 0x80, marker | PT_PCMU,
                          (seq0 + k) & 0xFFFF, (ts0 + 160 * k) & 0xFFFFFFFF,
                          ssrc) + audio[off:off + 160]
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k & 0xFFFF,
                         0x4000, 64, 17, 0, bytes([192, 0, 2, 1]),
                         bytes([192, 0, 2, 2]))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = bytes(12) + b"\x08\x00" + ip + udp
        # The first timestamp must not be 0: SIPp 3.6 takes a zero time
        # for "no previous packet" and would send the second one at once.
        usec = k * 20000
        f.write(struct.pack("<IIII", 1 + usec // 1000000, usec % 1000000,
                            len(frame), len(frame)))
        f.write(frame)
EOF
for f in caller-*.ul callee-*.ul; do
    python3 ul2rtp.py "$f" "${f%.ul}.pcap"
done

# --- SIPp scenarios --------------------------------------------------------
# Each call picks its own audio and talk time from its call number, so one
# SIPp instance per side (on the normal port 5060) can carry all the calls.
# The UAS numbers incoming calls in arrival order, which matches the UAC's.
pick_call() {   # emits the branch that jumps to the per-call section
    cat <<EOF
  <nop>
    <action>
      <assignstr assign_to="cn" value="[call_number]"/>
      <todouble assign_to="n" variable="cn"/>
EOF
    for ((n = 2; n <= calls; n++)); do
        echo "      <test assign_to=\"is$n\" variable=\"n\" compare=\"equal\" value=\"$n\"/>"
    done
    echo "    </action>"
    echo "  </nop>"
}

# Body of the talking phase for one side: play that call's audio, then (UAC
# only) stay on the line a bit longer than the audio before hanging up.
talk_sections() {   # $1 = caller|callee
    for ((n = calls; n >= 2; n--)); do
        echo "  <nop next=\"talk$n\" test=\"is$n\"/>"
    done
    for ((i = 0; i < calls; i++)); do
        n=$((i + 1))
        ((n == 1)) || echo "  <label id=\"talk$n\"/>"
        echo "  <nop><action><exec play_pcap_audio=\"$1-$n.pcap\"/></action></nop>"
        if [[ $1 == caller ]]; then
            echo "  <pause milliseconds=\"$((talk_s[i] * 1000 + 300))\"/>"
        fi
        echo "  <nop next=\"hangup\"/>"
    done
    echo "  <label id=\"hangup\"/>"
}

# Deterministic Call-IDs, tags and branches keep the capture readable and
# identical in content between regenerations (only timestamps change).
cat > uac.xml <<EOF
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="Tapline demo: agent phone places a call">
$(pick_call)
  <send retrans="500">
    <![CDATA[

      INVITE sip:+1555010[call_number]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-tl[call_number]-inv;rport
      Max-Forwards: 70
      From: "Agent 1001" <sip:1001@[local_ip]>;tag=phone-[call_number]
      To: <sip:+1555010[call_number]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:1001@[local_ip]:[local_port]>
      User-Agent: SIPp [sipp_version] (Tapline demo phone)
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=1001 [call_number]000 1 IN IP[media_ip_type] [media_ip]
      s=Tapline demo
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>

  <send>
    <![CDATA[

      ACK sip:+1555010[call_number]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-tl[call_number]-ack;rport
      Max-Forwards: 70
      From: "Agent 1001" <sip:1001@[local_ip]>;tag=phone-[call_number]
      To: <sip:+1555010[call_number]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0

    ]]>
  </send>

$(talk_sections caller)

  <send retrans="500">
    <![CDATA[

      BYE sip:+1555010[call_number]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-tl[call_number]-bye;rport
      Max-Forwards: 70
      From: "Agent 1001" <sip:1001@[local_ip]>;tag=phone-[call_number]
      To: <sip:+1555010[call_number]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      User-Agent: SIPp [sipp_version] (Tapline demo phone)
      Content-Length: 0

    ]]>
  </send>

  <recv response="200" crlf="true"/>
</scenario>
EOF

cat > uas.xml <<EOF
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="Tapline demo: PBX answers">
  <recv request="INVITE" crlf="true"/>
$(pick_call)
  <send>
    <![CDATA[

      SIP/2.0 100 Trying
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>

  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=pbx-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:+1555010[call_number]@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>

  <!-- let it ring for a second, like a person picking up -->
  <pause milliseconds="1000"/>

  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=pbx-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:+1555010[call_number]@[local_ip]:[local_port]>
      Server: SIPp [sipp_version] (Tapline demo PBX)
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=pbx [call_number]000 1 IN IP[media_ip_type] [media_ip]
      s=Tapline demo
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv

    ]]>
  </send>

  <recv request="ACK" rtd="true" crlf="true"/>

$(talk_sections callee)

  <recv request="BYE"/>

  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Server: SIPp [sipp_version] (Tapline demo PBX)
      Content-Length: 0

    ]]>
  </send>
</scenario>
EOF

# --- network ---------------------------------------------------------------
ip netns del "$ns_pbx" 2>/dev/null || true     # leftovers of an aborted run
ip netns del "$ns_phone" 2>/dev/null || true
ip netns add "$ns_pbx"
ip netns add "$ns_phone"
for ns in "$ns_pbx" "$ns_phone"; do
    # no IPv6 chatter (router solicitations, MLD) on the link
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip link add "$if_pbx" netns "$ns_pbx" address "$mac_pbx" type veth \
    peer name "$if_phone" netns "$ns_phone" address "$mac_phone"
ip -n "$ns_pbx" addr add "$ip_pbx/24" dev "$if_pbx"
ip -n "$ns_phone" addr add "$ip_phone/24" dev "$if_phone"
link_up() {   # $1 = namespace, $2 = interface
    # veth leaves UDP checksums to "hardware" that does not exist, so a
    # capture would show them as wrong; make the kernel fill them in.
    ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
    ip -n "$1" link set "$2" up
}
link_up "$ns_pbx" "$if_pbx"
link_up "$ns_phone" "$if_phone"

# --- capture and calls -----------------------------------------------------
# Capture on the phone's port, as a SPAN of the agent's switch port would.
# -Z root: tcpdump would otherwise drop privileges and fail to write here.
# --immediate-mode: without it libpcap hands packets over in blocks, and
# whatever sits in the last, unfinished block is lost when tcpdump stops.
ip netns exec "$ns_phone" tcpdump -q -n -i "$if_phone" -s 0 -U -Z root --immediate-mode \
    -w "$work/calls.pcap" udp 2>"$work/tcpdump.log" &
pids+=($!)

common=(-nostdin -trace_err -timeout 90s -timeout_error -recv_timeout 30000 -t u1)
ip netns exec "$ns_pbx" sipp -sf uas.xml -i "$ip_pbx" -p 5060 \
    -mi "$ip_pbx" -mp "$rtp_pbx" -m "$calls" "${common[@]}" >"$work/uas.log" 2>&1 &
uas=$!
pids+=($uas)

# Wait until the PBX listens on 5060 and tcpdump is capturing, or the first
# INVITE could be missed.
ready=
for _ in $(seq 50); do
    if ip netns exec "$ns_pbx" ss -Hlun "sport = :5060" | grep -q . &&
        grep -q "listening on" "$work/tcpdump.log"; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ -n $ready ]] || { echo "PBX or tcpdump did not come up" >&2; exit 1; }

# One new call every 2 s, so the calls overlap. -t u1 keeps every call on
# the phone's one socket at port 5060, like a real phone; -cid_str gives
# readable Call-IDs without SIPp's usual process id in them.
ip netns exec "$ns_phone" sipp "$ip_pbx:5060" -sf uac.xml -i "$ip_phone" -p 5060 \
    -mi "$ip_phone" -mp "$rtp_phone" -m "$calls" -l "$calls" -r 1 -rp 2000 \
    -cid_str "tapline-demo-%u@%s" \
    "${common[@]}" >"$work/uac.log" 2>&1
wait "$uas"
sleep 1                             # let the last packets reach the capture
kill -INT "${pids[0]}"
wait "${pids[0]}" || true
pids=()

install -m 0644 "$work/calls.pcap" "$out"

# --- report ----------------------------------------------------------------
echo "wrote $(basename "$out"): $(stat -c %s "$out") bytes"
tshark -r "$out" -q -z sip,stat -z rtp,streams
