-- A call's media in a codec Tapline does not decode is kept, as captured, in a pcap file
-- beside its recording (Ryyyymmddhhmmssssss.rtp.pcap), so nothing is lost.
ALTER TABLE recordings ADD COLUMN raw_media_file TEXT;
ALTER TABLE recordings ADD COLUMN raw_media_packets INTEGER;
