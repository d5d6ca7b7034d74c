# A Puavo bootserver's image sync, written for the tests from how bootservers behave:
#
#   ruby puavo_bootserver.rb <series url> <root CA file> <target folder>
#
# - every request is HTTPS (TLS is used even for an http:// URL), trusting only the CA file,
#   with peer verification;
# - the series meta file is read from the series URL; images and rdiffs from their meta `urls`,
#   tried in order;
# - a body is streamed to `<file>.partial` while its SHA-256 is computed; a wrong size or hash
#   deletes it and the next URL is tried;
# - an image already in place is trusted; otherwise it is patched (the real `rdiff patch`) from
#   an older local image with the smallest rdiff to it, else downloaded in full;
# - the 2 newest images of the series are kept, with the rdiffs from their 2 newest bases;
#   everything else in the folder is deleted first; CKSUMS lists what is kept.
#
# Each step is printed on stdout as one line (`full`, `patch`, `trusted`, `rdiff`, `delete`,
# `reject`, `GET`) so a test can tell what was done. Any failure: a message on stderr and
# exit status 1.

require 'digest'
require 'fileutils'
require 'json'
require 'net/http'
require 'openssl'
require 'uri'

IMAGE_LIMIT = 2
DIFF_LIMIT = 2

class SyncFailure < StandardError; end

def connection(uri, ca_file)
  http = Net::HTTP.new(uri.host, uri.port)
  http.ca_file = ca_file
  http.verify_mode = OpenSSL::SSL::VERIFY_PEER
  http.use_ssl = true
  http.open_timeout = 20
  http.read_timeout = 60
  http
end

# Calls the block with each chunk of the body of a GET; raises on anything but 200.
def get(url, ca_file, &block)
  uri = URI.parse(url)
  connection(uri, ca_file).start do |http|
    http.request(Net::HTTP::Get.new(uri)) do |response|
      puts "GET #{url} #{response.code}"
      raise SyncFailure, "#{url}: #{response.code} - #{response.message}" unless response.code == '200'
      response.read_body(&block)
    end
  end
end

def fetch_meta(url, ca_file)
  body = +''
  get(url, ca_file) { |chunk| body << chunk }
  series = JSON.parse(body)
  raise SyncFailure, "#{url}: not one series" unless series.is_a?(Hash) && series.size == 1
  name, value = series.first
  images = value.is_a?(Hash) ? value['images'] : nil
  raise SyncFailure, "#{url}: series #{name} has no image list" unless images.is_a?(Array)
  images
end

def sha256_of(path)
  Digest::SHA256.file(path).hexdigest
end

# Moves `partial` to `final` if it has the size and hash the meta file gives; deletes it if not.
def accept(partial, final, entry)
  size = File.size(partial)
  sha = sha256_of(partial)
  if size != entry['size'] || sha != entry['sha256']
    File.delete(partial)
    raise SyncFailure, "#{entry['filename']}: got #{size} bytes sha256 #{sha}, " \
                       "meta says #{entry['size']} bytes sha256 #{entry['sha256']}"
  end
  File.rename(partial, final)
end

# Downloads `entry` (an image or an rdiff of the meta file) to `final` from its urls in order.
def download(entry, final, ca_file)
  urls = entry['urls']
  raise SyncFailure, "#{entry['filename']}: no urls" unless urls.is_a?(Array) && !urls.empty?
  failures = []
  urls.each do |url|
    partial = "#{final}.partial"
    begin
      File.open(partial, 'wb') do |out|
        get(url, ca_file) { |chunk| out.write(chunk) }
      end
      accept(partial, final, entry)
      return url
    rescue StandardError => e
      File.delete(partial) if File.exist?(partial)
      failures << "#{url}: #{e.class}: #{e.message}"
      puts "reject #{failures.last}"
    end
  end
  raise SyncFailure, "#{entry['filename']}: every url failed: #{failures.join('; ')}"
end

def newest_diffs(image)
  (image['diffs'] || []).sort_by { |d| d['version'] }.reverse.first(DIFF_LIMIT)
end

# The local file of the image with `version`, if it is in place.
def local_base(images, version, target)
  base = images.find { |i| i['version'] == version }
  return nil unless base
  path = File.join(target, base['filename'])
  File.exist?(path) ? path : nil
end

# Patches `image` from a local older image: an rdiff already here first, else the smallest
# one whose base is here. Returns true if the image is now in place.
def patch_from_old(image, images, target, ca_file)
  final = File.join(target, image['filename'])
  candidates = (image['diffs'] || []).select { |d| local_base(images, d['version'], target) }
  candidates = candidates.sort_by { |d| d['size'] }
  local = candidates.select { |d| File.exist?(File.join(target, 'rdiffs', d['filename'])) }
  (local + (candidates - local)).each do |diff|
    rdiff = File.join(target, 'rdiffs', diff['filename'])
    begin
      download(diff, rdiff, ca_file) unless File.exist?(rdiff)
      base = local_base(images, diff['version'], target)
      partial = "#{final}.partial"
      ok = system('rdiff', 'patch', base, rdiff, partial)
      raise SyncFailure, "rdiff patch #{base} #{rdiff} failed" unless ok
      accept(partial, final, image)
      puts "patch #{image['filename']} #{File.basename(base)} #{diff['filename']}"
      return true
    rescue StandardError => e
      warn "patch #{image['filename']} with #{diff['filename']}: #{e.message}"
    end
  end
  false
end

def materialize(image, images, target, ca_file)
  final = File.join(target, image['filename'])
  if File.exist?(final)
    puts "trusted #{image['filename']}"
    return
  end
  return if patch_from_old(image, images, target, ca_file)
  url = download(image, final, ca_file)
  puts "full #{image['filename']} #{url}"
end

# Deletes every image and rdiff in the folder that is not kept, and any `.partial`.
def delete_unkept(target, kept_paths)
  (Dir.glob(File.join(target, '*.img*')) + Dir.glob(File.join(target, 'rdiffs', '*'))).each do |path|
    next if kept_paths.include?(path)
    File.delete(path)
    puts "delete #{File.basename(path)}"
  end
end

def sync(series_url, ca_file, target)
  raise SyncFailure, "#{ca_file}: no such CA file" unless File.file?(ca_file)
  FileUtils.mkdir_p(File.join(target, 'rdiffs'))
  images = fetch_meta(series_url, ca_file)
  kept = images.sort_by { |i| i['version'] }.reverse.first(IMAGE_LIMIT)
  diffs = kept.flat_map { |i| newest_diffs(i) }.uniq { |d| d['filename'] }
  kept_paths = kept.map { |i| File.join(target, i['filename']) } +
               diffs.map { |d| File.join(target, 'rdiffs', d['filename']) }
  delete_unkept(target, kept_paths)
  kept.each { |image| materialize(image, images, target, ca_file) }
  diffs.each do |diff|
    path = File.join(target, 'rdiffs', diff['filename'])
    next if File.exist?(path)
    url = download(diff, path, ca_file)
    puts "rdiff #{diff['filename']} #{url}"
  end
  lines = (kept + diffs).map { |e| "#{e['cksum']} #{e['size']} #{e['filename']}\n" }
  File.write(File.join(target, 'CKSUMS.tmp'), lines.join)
  File.rename(File.join(target, 'CKSUMS.tmp'), File.join(target, 'CKSUMS'))
end

if ARGV.size != 3
  warn 'usage: puavo_bootserver.rb <series url> <root CA file> <target folder>'
  exit 2
end
begin
  sync(*ARGV)
rescue StandardError => e
  warn "puavo_bootserver: #{e.class}: #{e.message}"
  exit 1
end
