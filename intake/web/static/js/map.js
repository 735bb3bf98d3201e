// The map, with no internet: Leaflet ships with the package, and the base layer is the gazetteer's ward
// centres (circles of each ward's size, named on hover). A tile server is used only when the centre has
// one (INTAKE_MAP_TILE_URL).
import { api } from "./api.js";
import { t } from "./i18n.js";

const L = window.L;

export const CATEGORY_COLOURS = { fire: "#b3261e", police: "#0b57a4", medical: "#1e6b2f", unknown: "#5b5f66" };
export const SOURCE_COLOURS = {
  calltaker: "#6a1b9a", gps: "#0b57a4", aml: "#00695c", "pidf-lo": "#00695c", facility: "#8d5b00",
  address: "#ad4f00", wifi: "#37474f", cell: "#37474f", unknown: "#37474f",
};

export class IncidentMap {
  constructor(element, config) {
    this.map = L.map(element, { preferCanvas: true, zoomControl: true, attributionControl: Boolean(config.tile_url) });
    this.map.setView(config.center, config.zoom || 13);
    element.intakeMap = this.map; // for the browser tests and `intake bench console`, which click real places
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { maxZoom: 19, attribution: config.tile_attribution || "" }).addTo(this.map);
    }
    this.base = L.layerGroup().addTo(this.map);
    this.incidents = L.layerGroup().addTo(this.map);
    this.subject = L.layerGroup().addTo(this.map);
    this.onPick = null;
    this.map.on("click", (event) => {
      if (this.onPick) {
        const pick = this.onPick;
        this.setPicking(null);
        pick(event.latlng.lat, event.latlng.lng);
      }
    });
    this.map.on("zoomend", () => this.labelWards());
    this.loadWards(config.province);
  }

  // Ward names are written on the map only when zoomed in enough to read them.
  labelWards() {
    this.map.getContainer().classList.toggle("ward-labels", this.map.getZoom() >= 14);
  }

  async loadWards(province) {
    const query = province ? `?province=${encodeURIComponent(province)}` : "";
    const wards = await api.get(`/api/v1/map/wards${query}`);
    for (const feature of wards.features) {
      const [lon, lat] = feature.geometry.coordinates;
      L.circle([lat, lon], {
        radius: feature.properties.radius_m, color: "#8a97a6", weight: 1, fillColor: "#dfe5ec", fillOpacity: 0.35,
        interactive: false,
      }).addTo(this.base);
      L.circleMarker([lat, lon], { radius: 2, color: "#8a97a6", weight: 1, fillOpacity: 1, interactive: false })
        .bindTooltip(feature.properties.short, { permanent: true, direction: "center", className: "ward-label" })
        .addTo(this.base);
    }
    this.labelWards();
    this.map.getContainer().dataset.wards = String(wards.features.length);
  }

  setPicking(callback) {
    this.onPick = callback;
    this.map.getContainer().classList.toggle("picking", Boolean(callback));
  }

  // The reporter's place: a dot, its accuracy circle, and where the place came from.
  showSubject(location) {
    this.subject.clearLayers();
    if (!location) return;
    const colour = SOURCE_COLOURS[location.source] || SOURCE_COLOURS.unknown;
    const at = [location.lat, location.lon];
    L.circle(at, { radius: Math.max(location.accuracy_m || 0, 5), color: colour, weight: 2, fillOpacity: 0.12 })
      .addTo(this.subject);
    L.circleMarker(at, { radius: 8, color: "#fff", weight: 3, fillColor: colour, fillOpacity: 1 })
      .bindTooltip(`${t(`src.${location.source}`)} · ${t("loc.accuracy", { m: Math.round(location.accuracy_m || 0) })}`,
        { permanent: true, direction: "top", offset: [0, -8], className: "subject-label" })
      .addTo(this.subject);
  }

  // Incidents as dots of their category's colour; `highlight` ids get a thick ring (likely duplicates).
  showIncidents(incidents, { highlight = new Set(), selected = null, onClick = null } = {}) {
    this.incidents.clearLayers();
    for (const incident of incidents) {
      if (incident.lat === null || incident.lat === undefined) continue;
      const colour = CATEGORY_COLOURS[incident.category] || CATEGORY_COLOURS.unknown;
      const ring = incident.id === selected ? 5 : highlight.has(incident.id) ? 4 : 2;
      const marker = L.circleMarker([incident.lat, incident.lon], {
        radius: incident.id === selected ? 11 : 8, color: incident.id === selected ? "#111" : "#fff", weight: ring,
        fillColor: colour, fillOpacity: 0.95,
      }).bindTooltip(`#${incident.id} ${t(`cat.${incident.category}`)} · ${t("incident.reports", { n: incident.report_count })}`);
      if (onClick) marker.on("click", () => onClick(incident.id));
      marker.addTo(this.incidents);
    }
  }

  focus(location) {
    if (!location) return;
    const zoom = location.accuracy_m > 2000 ? 13 : location.accuracy_m > 300 ? 15 : 16;
    this.map.setView([location.lat, location.lon], zoom, { animate: false });
  }

  fitIncidents(incidents) {
    const points = incidents.filter((i) => i.lat !== null && i.lat !== undefined).map((i) => [i.lat, i.lon]);
    if (points.length) this.map.fitBounds(points, { padding: [40, 40], maxZoom: 15, animate: false });
  }

  invalidate() {
    this.map.invalidateSize();
  }
}
